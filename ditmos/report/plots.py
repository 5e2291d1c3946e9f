"""The report's figures, drawn with matplotlib's Agg backend into PNG bytes.

Each figure function returns a :class:`Drawn`: the PNG, or why the figure is
not shown (neither: the figure does not apply and is left out).  The accuracy-vs-cost
figures also return what they drew (one
point per method and width, and whether it lies on the Pareto front), which
the page lists under the figure.

Readability rules kept by every figure: the legend sits outside the axes,
axis labels carry units, and the title starts with the dataset's short name.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator  # noqa: E402

from ditmos.report.collect import Method, ReportData, width_tag  # noqa: E402

# (colour, marker, size) per method; unknown methods take the fallback cycle.
_STYLE = {
    "ditmos": ("#d62728", "*", 300),
    "union": ("#7f7f7f", "^", 70),
    "weak_equal_macs": ("#1f77b4", "o", 80),
    "equal_params": ("#17becf", "s", 70),
    "strong": ("#000000", "D", 60),
    "ensemble_average": ("#9467bd", "P", 80),
    "soft_moe": ("#2ca02c", "v", 80),
    "early_exit": ("#bcbd22", ">", 80),
    "ablation_random_split": ("#ff7f0e", "X", 80),
    "ablation_no_adversarial": ("#8c564b", "X", 80),
    "ablation_no_aggregation": ("#e377c2", "X", 80),
}
_FALLBACK = [("#393b79", "h", 70), ("#637939", "p", 70), ("#843c39", "d", 70), ("#7b4173", "8", 70)]
_KIND_COLOR = {"ditmos": "#d62728", "ablation": "#ff7f0e", "baseline": "#1f77b4", "oracle": "#7f7f7f"}


@dataclass
class Drawn:
    png: bytes | None
    why: str | None = None
    points: list[dict] | None = None
    # legends that cover their own axes' data area (should stay empty)
    legend_overlaps: list[str] | None = None


def _skip(why: str) -> Drawn:
    return Drawn(None, why)


def _style(name: str, order: list[str]) -> tuple[str, str, int]:
    if name in _STYLE:
        return _STYLE[name]
    return _FALLBACK[order.index(name) % len(_FALLBACK)] if name in order else _FALLBACK[0]


def _finish(fig, **kw) -> Drawn:
    """Render ``fig`` to PNG and note any legend drawn over its axes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    overlaps = []  # the extents of the last draw, all in the same pixels
    for ax in fig.axes:
        leg = ax.get_legend()
        if leg is not None and leg.get_window_extent().overlaps(ax.get_window_extent()):
            overlaps.append(ax.get_title() or "axes")
    plt.close(fig)
    return Drawn(buf.getvalue(), legend_overlaps=overlaps, **kw)


def _title(data: ReportData, what: str) -> str:
    return f"{data.dataset}: {what}" if data.dataset else what


def _legend_outside(ax, handles=None, labels=None, **kw):
    """The legend to the right of the axes, never over the data."""
    args = (handles, labels) if handles is not None else ()
    return ax.legend(
        *args, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, fontsize=8, frameon=False, **kw
    )


def _si(x, _pos=None) -> str:
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:g}{suffix}"
    return f"{x:g}"


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats (cost no higher and accuracy
    no lower, one of them strictly), ordered by cost."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], -np.inf
    for i in order:
        if points[i][1] > best or (front and points[i] == points[front[-1]]):
            front.append(i)  # (an exact duplicate of a front point is on it too)
            best = points[i][1]
    return front


def _costed_names(data: ReportData, key: str = "macs") -> list[str]:
    """Methods with an accuracy and a cost ``key`` (the oracle has no cost)."""
    return list(
        dict.fromkeys(
            m.name
            for m in data.methods
            if m.kind != "oracle" and m.accuracy is not None and getattr(m, key) is not None
        )
    )


def _cost_figure(data: ReportData, key: str) -> Drawn:
    """Accuracy against one cost (``macs`` or ``flash_bytes``): one marker per
    method and width, a line joining each method's widths, the Pareto front,
    DiTMoS highlighted and its gap to the equal-MACs CNN at each width."""
    # the union (oracle) has no cost of its own and is not a deployable model:
    # the table lists it, the figures leave it out
    costed = [m for m in data.methods if m.kind != "oracle" and m.accuracy is not None and getattr(m, key) is not None]
    names = _costed_names(data, key)
    if len(names) < 2:
        if not data.methods:
            return _skip("no accuracies (metrics.json missing)")
        return _skip(
            "no other method than DiTMoS has a cost to compare with (`ditmos train "
            "... --compare` trains the baselines and ablations and counts their costs)"
        )
    ditmos = {m.width: m for m in costed if m.name == "ditmos"}
    weak = {m.width: m for m in costed if m.name == "weak_equal_macs"}
    fig, ax = plt.subplots(figsize=(7.2, 4.6))
    points = []
    xy = [(getattr(m, key), 100 * m.accuracy) for m in costed]
    front_idx = pareto_front(xy)
    on_front = {id(costed[i]) for i in front_idx}
    if len(front_idx) > 1:
        fx, fy = zip(*[xy[i] for i in front_idx])
        ax.step(fx, fy, where="post", color="#555555", ls="--", lw=1.0, zorder=1)
    for name in names:
        ms = sorted([m for m in costed if m.name == name], key=lambda m: m.width or 0)
        color, marker, size = _style(name, names)
        is_d = name == "ditmos"
        if len(ms) > 1:
            ax.plot(
                [getattr(m, key) for m in ms],
                [100 * m.accuracy for m in ms],
                color=color,
                lw=2.0 if is_d else 0.9,
                alpha=0.9 if is_d else 0.5,
                zorder=3 if is_d else 2,
            )
        for m in ms:
            x, y = getattr(m, key), 100 * m.accuracy
            if m.accuracy_std:
                ax.errorbar(x, y, yerr=100 * m.accuracy_std, color=color, lw=1, capsize=3, zorder=4)
            ax.scatter(
                x,
                y,
                color=color,
                marker=marker,
                s=size,
                zorder=6 if is_d else 5,
                edgecolors="black" if is_d else "none",
                linewidths=0.6,
            )
            points.append(
                {
                    "method": name,
                    "label": m.label,
                    "width": m.width,
                    "x": x,
                    "accuracy": m.accuracy,
                    "accuracy_std": m.accuracy_std,
                    "seeds": m.seeds,
                    "pareto": id(m) in on_front,
                }
            )
    for w, d in ditmos.items():
        x, y = getattr(d, key), 100 * d.accuracy
        c = weak.get(w) if key == "macs" else None
        text = f"w {width_tag(w)}" if len(ditmos) > 1 else ""
        if c is not None:
            # the single CNN with the same MACs sits right below/above DiTMoS
            cx, cy = getattr(c, key), 100 * c.accuracy
            ax.annotate(
                "",
                xy=(x, y),
                xytext=(cx, cy),
                arrowprops={"arrowstyle": "->", "color": "#d62728", "lw": 1.0, "shrinkA": 5, "shrinkB": 10},
                zorder=3,
            )
            text += (": " if text else "") + f"{y - cy:+.1f} pp vs equal-MACs CNN"
        if text:
            ax.annotate(
                text,
                (x, y),
                xytext=(9, 7),
                textcoords="offset points",
                fontsize=7.5,
                color="#d62728",
                fontweight="bold",
                zorder=7,
                bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.75},
            )
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(_si))
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda x, p: ""))
    ax.margins(y=0.12)  # room for the DiTMoS labels above the highest point
    ax.set_xlabel(
        "MACs per inference (count, log scale)"
        if key == "macs"
        else "flash for weights: int8 weights + int32 biases (bytes, log scale)"
    )
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(_title(data, "accuracy vs " + ("compute (MACs)" if key == "macs" else "flash")))
    ax.grid(alpha=0.3, which="major")
    xs = [p["x"] for p in points]
    lo, hi = min(xs), max(xs)
    ax.set_xlim(lo / 1.5, hi * 1.5)
    handles, labels = [], []
    for name in names:
        color, marker, size = _style(name, names)
        handles.append(
            Line2D(
                [],
                [],
                color=color,
                marker=marker,
                ls="-",
                lw=0.9,
                markersize=12 if name == "ditmos" else 7,
                markeredgecolor="black" if name == "ditmos" else color,
            )
        )
        labels.append(Method(name, None).label)
    if len(front_idx) > 1:
        handles.append(Line2D([], [], color="#555555", ls="--", lw=1.0))
        labels.append("Pareto front")
    if weak and ditmos and key == "macs":
        handles.append(Line2D([], [], color="#d62728", lw=1.0, marker=">", markersize=5))
        labels.append("DiTMoS vs equal-MACs CNN (pp)")
    title = "method" + (" (line joins widths)" if len(data.widths) > 1 else "")
    _legend_outside(ax, handles, labels, title=title, title_fontsize=8)
    return _finish(fig, points=points)


def accuracy_vs_macs(data: ReportData):
    return _cost_figure(data, "macs")


def accuracy_vs_flash(data: ReportData):
    return _cost_figure(data, "flash_bytes")


def accuracy_bars(data: ReportData):
    """Without any costs (no comparison): the accuracies as bars."""
    methods = [m for m in data.methods if m.accuracy is not None]
    if not methods:
        return _skip("no accuracies (metrics.json missing)")
    if len(_costed_names(data)) >= 2:
        return Drawn(None)  # the accuracy-vs-cost figures show them
    fig, ax = plt.subplots(figsize=(7, 0.4 * len(methods) + 1.3))
    ys = np.arange(len(methods))
    ax.barh(ys, [100 * m.accuracy for m in methods], color=[_KIND_COLOR[m.kind] for m in methods])
    ax.set_yticks(ys, [m.label for m in methods])
    ax.invert_yaxis()
    ax.set_xlabel("test accuracy (%)")
    ax.set_title(_title(data, "test accuracy (no costs without a comparison)"))
    return _finish(fig)


def device_accuracy_vs_latency(data: ReportData):
    measured = [(p, r) for p, r in data.evals if (r.get("latency") or {}).get("unit") and r.get("accuracy") is not None]
    if not measured:
        return _skip("no evaluation given (--eval)" if not data.evals else "the evaluations measured no latency")
    if len(measured) < 2:
        return Drawn(None)  # one point: the on-device table says it all
    unit = measured[0][1]["latency"]["unit"]
    fig, ax = plt.subplots(figsize=(7.2, 4.0))
    for path, r in measured:
        if r["latency"]["unit"] != unit:
            continue
        board = (r.get("devices") or [{}])[0].get("board")
        from ditmos.report.render import eval_method

        method = eval_method(r)
        ditmos_row = method == "DiTMoS"
        ax.scatter(
            r["latency"]["median"],
            100 * r["accuracy"],
            color="#d62728" if ditmos_row else None,
            marker="*" if ditmos_row else "o",
            s=300 if ditmos_row else 80,
            edgecolors="black",
            linewidths=0.6,
            label=f"{path.name}: {method} ({board})",
        )
    from ditmos.report.render import device_pareto

    front = sorted(
        (
            (r["latency"]["median"], 100 * r["accuracy"])
            for p, r in measured
            if p in device_pareto(measured) and r["latency"]["unit"] == unit
        )
    )
    if len(front) > 1:
        ax.plot([f[0] for f in front], [f[1] for f in front], "k--", lw=0.8, alpha=0.6)
    ax.set_xlabel(f"on-device median latency ({unit} per inference)")
    ax.set_ylabel("on-device test accuracy (%)")
    ax.set_title(_title(data, "measured on the device (dashed: Pareto front)"))
    ax.grid(alpha=0.3)
    _legend_outside(ax, title="evaluation", title_fontsize=8)
    return _finish(fig)


def per_layer_latency(data: ReportData):
    for path, rep in data.evals:
        pl = rep.get("per_layer_latency")
        if pl and pl.get("layers"):
            layers = pl["layers"]
            fig, ax = plt.subplots(figsize=(7.2, 0.28 * len(layers) + 1.3))
            ys = np.arange(len(layers))
            ax.barh(ys, [lay["median"] for lay in layers], color="tab:purple")
            ax.set_yticks(ys, [lay["name"] for lay in layers], fontsize=7)
            ax.invert_yaxis()
            ax.set_xlabel(f"median per layer ({pl.get('unit')} per inference)")
            ax.set_title(_title(data, f"per-layer latency ({path.name})"))
            ax.grid(alpha=0.3, axis="x")
            return _finish(fig)
    if not data.evals:
        return _skip("no evaluation given (--eval)")
    return _skip("the firmware was built without profiling (`ditmos build --profile`)")


def memory_plan(data: ReportData):
    cg = data.codegen
    if not cg:
        return _skip("no codegen manifest")
    tensors = [t for t in cg.get("tensors", []) if t.get("offset") is not None and t.get("bytes")]
    if not tensors:
        return _skip("the codegen manifest lists no placed tensors")
    groups = sorted({str(t.get("group")) for t in tensors})
    cmap = plt.get_cmap("tab10")
    colors = {g: cmap(i % 10) for i, g in enumerate(groups)}
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for t in tensors:
        ax.add_patch(
            Rectangle(
                (t["first"], t["offset"]),
                t["last"] - t["first"] + 1,
                t["bytes"],
                facecolor=colors[str(t.get("group"))],
                edgecolor="black",
                lw=0.4,
                alpha=0.8,
            )
        )
    last = max(t["last"] for t in tensors) + 1
    arena = cg.get("arena_bytes") or max(t["offset"] + t["bytes"] for t in tensors)
    ax.set_xlim(min(t["first"] for t in tensors), last)
    ax.set_ylim(0, arena * 1.05)
    ax.axhline(arena, color="tab:red", ls="--", lw=1)
    ax.set_xlabel("step of the composed inference (layer index)")
    ax.set_ylabel("arena offset (bytes)")
    ax.set_title(_title(data, f"memory plan ({cg.get('strategy', '?')}), arena {arena:,} bytes"))
    handles = [Rectangle((0, 0), 1, 1, facecolor=colors[g], edgecolor="black", lw=0.4) for g in groups]
    handles.append(Line2D([], [], color="tab:red", ls="--", lw=1))
    _legend_outside(
        ax,
        handles,
        ["shared (selector, input)" if g == "None" else g for g in groups] + ["arena size"],
        title="buffers of",
        title_fontsize=8,
    )
    return _finish(fig)


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
        return _skip("no routing histogram (no metrics.json, no evaluation)")
    k = max(len(s) for _, s in series)
    fig, ax = plt.subplots(figsize=(7.2, 3.6))
    width = 0.8 / len(series)
    for i, (name, counts) in enumerate(series):
        c = np.asarray(counts, dtype=float)
        ax.bar(np.arange(len(c)) + i * width, 100 * c / max(c.sum(), 1), width, label=name)
    ax.set_xticks(np.arange(k) + 0.4 - width / 2, [f"classifier {i}" for i in range(k)], fontsize=8)
    ax.set_ylabel("share of test samples (%)")
    ax.set_title(_title(data, "routing: which classifier the selector picks"))
    ax.grid(alpha=0.3, axis="y")
    _legend_outside(ax, title="measured by", title_fontsize=8)
    return _finish(fig)


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
        return _skip("no confusion matrix (no metrics.json, no evaluation)")
    c = np.asarray(conf, dtype=float)
    n = len(c)
    names = data.class_names if len(data.class_names) == n else [str(i) for i in range(n)]
    fig, ax = plt.subplots(figsize=(0.6 * n + 2.5, 0.6 * n + 2))
    rows = c / np.maximum(c.sum(1, keepdims=True), 1)
    ax.imshow(rows, cmap="Blues", vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            if c[i, j]:
                ax.text(
                    j,
                    i,
                    f"{int(c[i, j])}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if rows[i, j] > 0.5 else "black",
                )
    ax.set_xticks(range(n), names, rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(n), names, fontsize=7)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(_title(data, f"confusion matrix, {source}"), fontsize=10)
    return _finish(fig)


FIGURES = [
    ("accuracy_vs_macs", "Accuracy vs compute (every method at every width)", accuracy_vs_macs),
    ("accuracy_vs_flash", "Accuracy vs flash (every method at every width)", accuracy_vs_flash),
    ("accuracy", "Accuracy", accuracy_bars),
    ("device", "On the device: accuracy vs latency (every evaluation)", device_accuracy_vs_latency),
    ("per_layer_latency", "Per-layer latency", per_layer_latency),
    ("memory_plan", "Memory plan over time (arena offsets per tensor)", memory_plan),
    ("routing", "Routing histogram", routing_histogram),
    ("confusion", "Confusion matrix", confusion_matrix),
]
