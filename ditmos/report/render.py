"""Markdown and a self-contained HTML page (PNG figures inline as base64, and beside it)."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import jinja2

from ditmos.report.collect import Method, ReportData, width_tag
from ditmos.report.plots import FIGURES

_PAGE = jinja2.Template(
    """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>
body { font-family: sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { margin-bottom: 0.2em; }
.subtitle { color: #555; margin-top: 0; }
table { border-collapse: collapse; margin: 0.6em 0 1.2em; font-size: 0.9em; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.6em; text-align: right; }
th { background: #f2f2f2; }
th:first-child, td:first-child { text-align: left; }
tr.kind-ditmos td { font-weight: bold; background: #fdecea; }
tr.kind-oracle td { color: #666; font-style: italic; }
tr.width-start td { border-top: 2px solid #666; }
ul.headline li { margin: 0.2em 0; }
img { max-width: 100%; border: 1px solid #ddd; }
details { margin: 0.3em 0 1.5em; }
.missing { color: #a40; }
.source { color: #666; font-size: 0.85em; }
</style></head><body>
<h1>{{ title }}</h1>
{% if subtitle %}<p class="subtitle">{{ subtitle }}</p>{% endif %}
{% if headline %}<ul class="headline">{% for h in headline %}<li>{{ h }}</li>{% endfor %}</ul>{% endif %}
{% for t in tables %}<h2>{{ t.title }}</h2>
<table id="table-{{ t.key }}"><thead><tr>{% for h in t.header %}<th>{{ h }}</th>{% endfor %}</tr></thead>
<tbody>{% for row in t.rows %}{% set meta = t.meta[loop.index0] if t.meta else none %}<tr{% if meta %} class="kind-{{ meta.kind }}{% if meta.width_start %} width-start{% endif %}" data-method="{{ meta.method }}" data-width="{{ meta.width }}"{% endif %}>{% for c in row %}<td>{{ c }}</td>{% endfor %}</tr>
{% endfor %}</tbody></table>
{% endfor %}
{% for f in figures %}<h2>{{ f.title }}</h2>
{% if f.b64 %}<img id="fig-{{ f.key }}" alt="{{ f.title }}" src="data:image/png;base64,{{ f.b64 }}">
{% if f.points %}<details id="points-{{ f.key }}"><summary>The {{ f.points|length }} plotted points{% if f.front %}. Pareto front, cheapest first: {{ f.front }}{% endif %}</summary>
<table><thead><tr><th>method</th><th>width</th><th>{{ f.cost_label }}</th><th>test accuracy (%)</th><th>on the Pareto front</th></tr></thead>
<tbody>{% for p in f.points %}<tr class="point" data-method="{{ p.method }}" data-width="{{ p.width_attr }}"><td>{{ p.label }}</td><td>{{ p.width_text }}</td><td>{{ p.x_text }}</td><td>{{ p.acc_text }}</td><td>{{ "yes" if p.pareto else "" }}</td></tr>
{% endfor %}</tbody></table></details>{% endif %}
{% else %}<p class="missing">Not shown: {{ f.why }}.</p>{% endif %}
{% endfor %}
{% if missing %}<h2>Missing</h2><ul>{% for m in missing %}<li class="missing">{{ m }}</li>{% endfor %}</ul>{% endif %}
<p class="source">Run directory: <code>{{ run_dir }}</code>{% if methods_source %}; methods from <code>{{ methods_source }}</code>{% endif %}.</p>
</body></html>
""",
    autoescape=True,
)

_COST_LABEL = {"accuracy_vs_macs": "MACs / inference", "accuracy_vs_flash": "flash (bytes)"}
_KIND_ORDER = {"ditmos": 0, "oracle": 1, "ablation": 2, "baseline": 3}


def _pct(v):
    return "—" if v is None else f"{100 * v:.2f}%"


def _num(v):
    if v is None:
        return "—"
    return f"{v:,.0f}" if float(v) >= 100 else f"{v:.4g}"


def accuracy_text(m: Method, seeds: int | None = None) -> str:
    """``81.20`` or ``81.20 ± 0.85`` (percent), with ``(2 seeds)`` added when
    the number of seeds differs from ``seeds`` (the page's usual number)."""
    if m.accuracy is None:
        return "—"
    text = f"{100 * m.accuracy:.2f}"
    if m.seeds > 1:
        text += " ± " + ("?" if m.accuracy_std is None else f"{100 * m.accuracy_std:.2f}")
    if seeds is not None and m.seeds != seeds:
        text += f" ({m.seeds} seed{'s' if m.seeds > 1 else ''})"
    return text


def _seeds(data: ReportData) -> int:
    return max((m.seeds for m in data.methods), default=1)


def ordered_methods(data: ReportData) -> list[Method]:
    """By width, then DiTMoS, the oracle, ablations and baselines (each in
    the order the comparison lists them)."""
    index = {id(m): i for i, m in enumerate(data.methods)}
    return sorted(
        data.methods, key=lambda m: (m.width if m.width is not None else -1, _KIND_ORDER[m.kind], index[id(m)])
    )


def headline(data: ReportData) -> list[str]:
    """One sentence per width: DiTMoS against the single CNN with equal MACs."""
    out = []
    for w in data.widths or [None]:
        d = next((m for m in data.methods if m.name == "ditmos" and m.width == w), None)
        c = next((m for m in data.methods if m.name == "weak_equal_macs" and m.width == w), None)
        if d is None or c is None or d.accuracy is None or c.accuracy is None:
            continue
        where = f"width {width_tag(w)}: " if w is not None else ""
        macs = f" at {_num(d.macs)} MACs" if d.macs is not None else ""
        n = _seeds(data)
        seeds = f", mean ± std over {n} seeds" if n > 1 else ""
        out.append(
            f"{where}DiTMoS {accuracy_text(d, n)}% vs the single CNN with equal MACs "
            f"{accuracy_text(c, n)}% ({100 * (d.accuracy - c.accuracy):+.2f} pp"
            f"{seeds}){macs}"
        )
    return out


def _methods_table(data: ReportData) -> dict:
    rows, meta, prev, seeds = [], [], object(), _seeds(data)
    ditmos = {m.width: m for m in data.methods if m.name == "ditmos"}
    for m in ordered_methods(data):
        d = ditmos.get(m.width)
        if m.name == "ditmos":
            delta = "reference"
        elif d is None or d.accuracy is None or m.accuracy is None:
            delta = "—"
        else:
            delta = f"{100 * (m.accuracy - d.accuracy):+.2f}"
        costs = [_num(m.macs), _num(m.flash_bytes), _num(m.params)] if m.kind != "oracle" else ["n/a (oracle)"] * 3
        rows.append([m.label, width_tag(m.width) or "—", accuracy_text(m, seeds), delta, *costs])
        meta.append(
            {
                "method": m.name,
                "kind": m.kind,
                "width": width_tag(m.width),
                "width_start": m.width != prev and bool(rows[:-1]),
            }
        )
        prev = m.width
    acc = "test accuracy (%)" + (f", mean ± std over {seeds} seeds" if seeds > 1 else "")
    return {
        "key": "methods",
        "title": "DiTMoS, ablations and baselines (float models, test split)",
        "header": ["method", "width", acc, "Δ vs DiTMoS (pp)", "MACs / inference", "flash (bytes)", "params"],
        "rows": rows,
        "meta": meta,
    }


def tables(data: ReportData) -> list[dict]:
    out = []
    if data.methods:
        out.append(_methods_table(data))
    if data.certify:
        rows = []
        for path, r in data.certify:
            s = r["summary"]
            curve = ", ".join(f"{k}: {100 * v:.1f}%" for k, v in (s.get("certified_accuracy") or {}).items())
            rows.append(
                [
                    path.name,
                    r.get("kind"),
                    _num(r.get("sigma")),
                    _num(r.get("n")),
                    _num(s.get("samples")),
                    curve,
                    f"{s.get('acr', 0):.3f}",
                    _pct(s.get("abstain_rate")),
                ]
            )
        out.append(
            {
                "title": "Certified l2 robustness by randomized smoothing (test windows; "
                "`ditmos certify`, docs/smoothing.md)",
                "header": [
                    "file",
                    "smoothing",
                    "sigma",
                    "n",
                    "windows",
                    "certified accuracy at radius",
                    "ACR",
                    "abstain",
                ],
                "rows": rows,
            }
        )
    if data.evals:
        rows = []
        front = device_pareto(data.evals)
        for path, r in data.evals:
            lat, mem = r.get("latency") or {}, r.get("memory") or {}
            dev = (r.get("devices") or [{}])[0]
            unit = lat.get("unit")
            rows.append(
                [
                    path.name,
                    dev.get("board") or "—",
                    f"{r.get('samples')}/{r.get('samples_planned')}",
                    _pct(r.get("accuracy")),
                    _pct(r.get("accuracy_int8_reference")),
                    _pct(r.get("accuracy_float")),
                    str(r.get("mismatches")),
                    "—" if not unit else f"{_num(lat['median'])} / {_num(lat['p95'])} / {_num(lat['max'])} {unit}",
                    _num(mem.get("flash")),
                    _num(mem.get("ram")),
                    _num(mem.get("stack_high_water")),
                    _num(mem.get("arena")),
                    eval_method(r),
                    str((r.get("routing") or {}).get("device") or "—"),
                    "yes" if path in front else ("—" if not unit else "no"),
                ]
            )
        out.append(
            {
                "key": "evaluations",
                "title": "On-device evaluation (one row per "
                "evaluation; Pareto front: no other "
                "evaluation in the same latency unit is at "
                "most as slow (median) and at least as "
                "accurate)",
                "header": [
                    "evaluation",
                    "board",
                    "samples",
                    "accuracy",
                    "int8 reference",
                    "float",
                    "mismatches",
                    "latency median / p95 / max",
                    "flash",
                    "RAM",
                    "stack high-water",
                    "arena",
                    "method",
                    "routes / exits taken",
                    "Pareto front",
                ],
                "rows": rows,
                "meta": None,
            }
        )
        pipes = [(path, r) for path, r in data.evals if (r.get("input_pipeline") or {}).get("raw")]
        if pipes:
            rows = []
            for path, r in pipes:
                p, lat = r["input_pipeline"], r.get("latency") or {}
                pm = ((r.get("memory") or {}).get("build") or {}).get("input_pipeline") or {}
                raw_ram = (pm.get("raw_request") or {}).get("ram")
                rows.append(
                    [
                        path.name,
                        p["raw"],
                        "—" if not p.get("available") else f"{_num(p['median'])} {p['unit']}",
                        "—" if not lat.get("unit") else f"{_num(lat['median'])} {lat['unit']}",
                        _pct(p.get("share_median")) if p.get("available") else "—",
                        _num(pm.get("code")),
                        _num(pm.get("constants")),
                        _num(pm.get("ram")),
                        _num(raw_ram),
                    ]
                )
            out.append(
                {
                    "key": "input-pipeline",
                    "title": "Input pipeline on the device (raw inputs, `ditmos evaluate "
                    "--raw`): front end, normalisation, quantisation",
                    "header": [
                        "evaluation",
                        "raw input",
                        "pipeline median",
                        "inference median",
                        "pipeline share",
                        "code B",
                        "constants B",
                        "RAM B",
                        "RAW buffers B",
                    ],
                    "rows": rows,
                    "meta": None,
                }
            )
        for path, r in data.evals:
            if r.get("mismatch_list"):
                out.append(
                    {
                        "key": f"mismatches-{path.name}",
                        "title": f"Mismatches with the host reference ({path.name})",
                        "header": ["sample", "label", "device", "reference", "device route", "reference route"],
                        "rows": [
                            [
                                m["index"],
                                m["label"],
                                m["device"],
                                m["reference"],
                                m["device_route"],
                                m["reference_route"],
                            ]
                            for m in r["mismatch_list"]
                        ],
                        "meta": None,
                    }
                )
    return out


def eval_method(report: dict) -> str:
    """The method an evaluation measured (older reports: DiTMoS)."""
    from ditmos.methods import label

    meta = report.get("meta") or {}
    return label(meta.get("method") or "ditmos")


def device_pareto(evals: list) -> set:
    """Evaluations on the accuracy vs median latency Pareto front, among those
    measured in the same latency unit."""
    pts = [
        (p, r["latency"]["unit"], float(r["latency"]["median"]), float(r["accuracy"]))
        for p, r in evals
        if (r.get("latency") or {}).get("available") and r.get("accuracy") is not None
    ]
    front = set()
    for p, unit, lat, acc in pts:
        if not any(
            u == unit and (l2 <= lat and a2 >= acc) and (l2 < lat or a2 > acc) for q, u, l2, a2 in pts if q != p
        ):
            front.add(p)
    return front


def _points_view(points: list[dict]) -> tuple[list[dict], str]:
    view = []
    for p in points:
        acc = f"{100 * p['accuracy']:.2f}"
        if p.get("seeds", 1) > 1 and p.get("accuracy_std") is not None:
            acc += f" ± {100 * p['accuracy_std']:.2f}"
        view.append(
            {
                **p,
                "width_text": width_tag(p["width"]) or "—",
                "width_attr": width_tag(p["width"]),
                "x_text": _num(p["x"]),
                "acc_text": acc,
            }
        )
    front = "; ".join(
        f"{p['label']} (w {p['width_text']})" if p["width_text"] != "—" else p["label"]
        for p in sorted(view, key=lambda p: (p["x"], -p["accuracy"]))
        if p["pareto"]
    )
    return view, front


def _md_table(t: dict) -> list[str]:
    lines = [f"## {t['title']}", "", "| " + " | ".join(t["header"]) + " |", "|" + "---|" * len(t["header"])]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in t["rows"]]
    return lines + [""]


def write_report(data: ReportData, out_dir: str | Path) -> dict:
    out = Path(out_dir)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    figures = []
    for key, title, fn in FIGURES:
        drawn = fn(data)
        if drawn.png is None and drawn.why is None:
            continue  # does not apply to this report
        f = {
            "key": key,
            "title": title,
            "why": drawn.why,
            "b64": None,
            "file": None,
            "points": None,
            "front": "",
            "cost_label": _COST_LABEL.get(key, "cost"),
            "overlaps": drawn.legend_overlaps,
        }
        if drawn.png is not None:
            rel = f"figures/{key}.png"
            tmp = out / f"figures/.{key}.png.tmp{os.getpid()}"
            tmp.write_bytes(drawn.png)
            os.replace(tmp, out / rel)
            f["b64"], f["file"] = base64.b64encode(drawn.png).decode("ascii"), rel
        if drawn.points:
            f["points"], f["front"] = _points_view(drawn.points)
            f["raw_points"] = drawn.points
        figures.append(f)
    tabs = tables(data)
    heads = headline(data)
    md = [f"# {data.title}", ""]
    if data.subtitle:
        md += [data.subtitle, ""]
    md += [f"- {h}" for h in heads] + ([""] if heads else [])
    for t in tabs:
        md += _md_table(t)
    for f in figures:
        md += [f"## {f['title']}", ""]
        md += [f"![{f['title']}]({f['file']})" if f["file"] else f"Not shown: {f['why']}.", ""]
        if f["front"]:
            md += [f"Pareto front, cheapest first: {f['front']}.", ""]
    if data.missing:
        md += ["## Missing", ""] + [f"- {m}" for m in data.missing] + [""]
    md += [
        f"Run directory: `{data.run_dir}`"
        + (f"; methods from `{data.methods_source}`." if data.methods_source else "."),
        "",
    ]
    html = _PAGE.render(
        title=data.title,
        subtitle=data.subtitle,
        headline=heads,
        run_dir=str(data.run_dir),
        methods_source=data.methods_source,
        tables=tabs,
        figures=figures,
        missing=data.missing,
    )
    for name, text in (("report.md", "\n".join(md)), ("report.html", html)):
        tmp = out / f".{name}.tmp{os.getpid()}"
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, out / name)
    return {
        "markdown": out / "report.md",
        "html": out / "report.html",
        "figures": [f["key"] for f in figures if f["file"]],
        "not_shown": {f["key"]: f["why"] for f in figures if not f["file"]},
        "points": {f["key"]: f["raw_points"] for f in figures if f["points"]},
        "legend_overlaps": {f["key"]: f["overlaps"] for f in figures if f["overlaps"]},
        "missing": list(data.missing),
    }
