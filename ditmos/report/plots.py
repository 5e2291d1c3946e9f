"""The report's figures, drawn with matplotlib's Agg backend into PNG bytes.

Each function returns ``(png_bytes, None)`` or ``(None, why_not)``.
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from ditmos.report.collect import ReportData  # noqa: E402

_KIND_STYLE = {"ditmos": ("tab:red", "*", 220), "ablation": ("tab:orange", "s", 60),
               "baseline": ("tab:blue", "o", 60), "oracle": ("tab:gray", "^", 60)}


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def accuracy_vs_cost(data: ReportData):
    methods = [m for m in data.methods if m.accuracy is not None]
    if not methods:
        return None, "no accuracies (metrics.json missing)"
    measured = [(p, r) for p, r in data.evals if r.get("latency", {}).get("unit")
                and r.get("accuracy") is not None]
    costed = [m for m in methods if m.macs is not None or m.flash_bytes is not None]
    panels = (["macs", "flash"] if costed else []) + (["device"] if measured else [])
    if not panels:
        fig, ax = plt.subplots(figsize=(7, 0.4 * len(methods) + 1.2))
        ys = np.arange(len(methods))
        ax.barh(ys, [100 * m.accuracy for m in methods],
                color=[_KIND_STYLE[m.kind][0] for m in methods])
        ax.set_yticks(ys, [m.label for m in methods])
        ax.set_xlabel("test accuracy (%)")
        ax.set_title("accuracy (no cost figures available)")
        return _png(fig), None
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.2), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        if panel == "device":
            unit = measured[0][1]["latency"]["unit"]
            for path, r in measured:
                if r["latency"]["unit"] != unit:
                    continue
                ax.scatter(r["latency"]["median"], 100 * r["accuracy"], c="tab:red", marker="*",
                           s=220)
                ax.annotate(f"{path.name} ({(r.get('devices') or [{}])[0].get('board')})",
                            (r["latency"]["median"], 100 * r["accuracy"]), fontsize=8,
                            xytext=(4, 4), textcoords="offset points")
            ax.set_xlabel(f"on-device median latency ({unit})")
            ax.set_ylabel("on-device accuracy (%)")
            ax.set_title("DiTMoS measured on the device")
            continue
        key = "macs" if panel == "macs" else "flash_bytes"
        for m in methods:
            x = getattr(m, key)
            if x is None:
                continue
            color, marker, size = _KIND_STYLE[m.kind]
            ax.scatter(x, 100 * m.accuracy, c=color, marker=marker, s=size)
            ax.annotate(m.label, (x, 100 * m.accuracy), fontsize=7, xytext=(4, 3),
                        textcoords="offset points")
        oracle = [m for m in methods if m.kind == "oracle"]
        for m in oracle:
            ax.axhline(100 * m.accuracy, color="tab:gray", ls=":", lw=1)
        ax.set_xscale("log")
        ax.set_xlabel("MACs per inference (latency proxy)" if key == "macs"
                      else "flash bytes (int8 weights + int32 biases)")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title("accuracy vs " + ("compute" if key == "macs" else "flash"))
        ax.grid(alpha=0.3)
    return _png(fig), None


def per_layer_latency(data: ReportData):
    for path, rep in data.evals:
        pl = rep.get("per_layer_latency")
        if pl and pl.get("layers"):
            layers = pl["layers"]
            fig, ax = plt.subplots(figsize=(7, 0.28 * len(layers) + 1.3))
            ys = np.arange(len(layers))
            ax.barh(ys, [lay["median"] for lay in layers], color="tab:purple")
            ax.set_yticks(ys, [lay["name"] for lay in layers], fontsize=7)
            ax.invert_yaxis()
            ax.set_xlabel(f"median per layer ({pl.get('unit')})")
            ax.set_title(f"per-layer latency ({path.name})")
            return _png(fig), None
    if not data.evals:
        return None, "no evaluation given (--eval)"
    return None, "the firmware was built without profiling (`ditmos build --profile`)"


def memory_plan(data: ReportData):
    cg = data.codegen
    if not cg:
        return None, "no codegen manifest"
    tensors = [t for t in cg.get("tensors", []) if t.get("offset") is not None and t.get("bytes")]
    if not tensors:
        return None, "the codegen manifest lists no placed tensors"
    groups = sorted({str(t.get("group")) for t in tensors})
    cmap = plt.get_cmap("tab10")
    colors = {g: cmap(i % 10) for i, g in enumerate(groups)}
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for t in tensors:
        ax.add_patch(Rectangle((t["first"], t["offset"]), t["last"] - t["first"] + 1, t["bytes"],
                               facecolor=colors[str(t.get("group"))], edgecolor="black", lw=0.4,
                               alpha=0.8))
    last = max(t["last"] for t in tensors) + 1
    arena = cg.get("arena_bytes") or max(t["offset"] + t["bytes"] for t in tensors)
    ax.set_xlim(min(t["first"] for t in tensors), last)
    ax.set_ylim(0, arena * 1.05)
    ax.axhline(arena, color="tab:red", ls="--", lw=1)
    ax.set_xlabel("step of the composed inference")
    ax.set_ylabel("arena offset (bytes)")
    ax.set_title(f"memory plan ({cg.get('strategy', '?')}): arena {arena} bytes")
    handles = [Rectangle((0, 0), 1, 1, color=colors[g]) for g in groups]
    ax.legend(handles, ["shared" if g == "None" else g for g in groups], fontsize=7,
              loc="upper right")
    return _png(fig), None


def routing_histogram(data: ReportData):
    series = []
    for path, rep in data.evals:
        r = rep.get("routing") or {}
        if r.get("device"):
            series.append((f"device ({path.name})", r["device"]))
            if r.get("reference"):
                series.append(("host int8 reference", r["reference"]))
            break
    t = ((data.metrics or {}).get("test") or {}).get("float") or {}
    if t.get("routing_histogram"):
        series.append(("float (metrics.json)", t["routing_histogram"]))
    if not series:
        return None, "no routing histogram (no metrics.json, no evaluation)"
    k = max(len(s) for _, s in series)
    fig, ax = plt.subplots(figsize=(7, 3.6))
    width = 0.8 / len(series)
    for i, (name, counts) in enumerate(series):
        c = np.asarray(counts, dtype=float)
        ax.bar(np.arange(len(c)) + i * width, 100 * c / max(c.sum(), 1), width, label=name)
    ax.set_xticks(np.arange(k) + 0.4 - width / 2, [f"classifier {i}" for i in range(k)],
                  fontsize=8)
    ax.set_ylabel("share of test samples (%)")
    ax.set_title("routing: which classifier the selector picks")
    ax.legend(fontsize=8)
    return _png(fig), None


def confusion_matrix(data: ReportData):
    conf, source = None, ""
    for path, rep in data.evals:
        if rep.get("confusion") and rep.get("samples"):
            conf, source = rep["confusion"], f"on device ({path.name})"
            break
    if conf is None:
        t = ((data.metrics or {}).get("test") or {}).get("float") or {}
        if t.get("confusion_matrix"):
            conf, source = t["confusion_matrix"], "float model (metrics.json)"
    if conf is None:
        return None, "no confusion matrix (no metrics.json, no evaluation)"
    c = np.asarray(conf, dtype=float)
    n = len(c)
    names = data.class_names if len(data.class_names) == n else [str(i) for i in range(n)]
    fig, ax = plt.subplots(figsize=(0.6 * n + 2.5, 0.6 * n + 2))
    rows = c / np.maximum(c.sum(1, keepdims=True), 1)
    ax.imshow(rows, cmap="Blues", vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            if c[i, j]:
                ax.text(j, i, f"{int(c[i, j])}", ha="center", va="center", fontsize=7,
                        color="white" if rows[i, j] > 0.5 else "black")
    ax.set_xticks(range(n), names, rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(n), names, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"confusion matrix, {source}")
    return _png(fig), None


FIGURES = [
    ("accuracy_vs_cost", "Accuracy vs latency vs flash", accuracy_vs_cost),
    ("per_layer_latency", "Per-layer latency", per_layer_latency),
    ("memory_plan", "Memory plan over time (arena offsets per tensor)", memory_plan),
    ("routing", "Routing histogram", routing_histogram),
    ("confusion", "Confusion matrix", confusion_matrix),
]
