"""Markdown and a self-contained HTML page (PNG figures inline as base64, and beside it)."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import jinja2

from ditmos.report.collect import ReportData
from ditmos.report.plots import FIGURES

_PAGE = jinja2.Template("""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>
body { font-family: sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
img { max-width: 100%; border: 1px solid #ddd; }
.missing { color: #a40; }
</style></head><body>
<h1>{{ title }}</h1>
<p>Run directory: <code>{{ run_dir }}</code>{% if methods_source %}; methods from <code>{{ methods_source }}</code>{% endif %}.</p>
{% for t in tables %}<h2>{{ t.title }}</h2>
<table><tr>{% for h in t.header %}<th>{{ h }}</th>{% endfor %}</tr>
{% for row in t.rows %}<tr>{% for c in row %}<td>{{ c }}</td>{% endfor %}</tr>{% endfor %}</table>
{% endfor %}
{% for f in figures %}<h2>{{ f.title }}</h2>
{% if f.b64 %}<img id="fig-{{ f.key }}" alt="{{ f.title }}" src="data:image/png;base64,{{ f.b64 }}">
{% else %}<p class="missing">Not shown: {{ f.why }}.</p>{% endif %}
{% endfor %}
{% if missing %}<h2>Missing</h2><ul>{% for m in missing %}<li class="missing">{{ m }}</li>{% endfor %}</ul>{% endif %}
</body></html>
""", autoescape=True)


def _pct(v):
    return "—" if v is None else f"{100 * v:.2f}%"


def _num(v):
    if v is None:
        return "—"
    return f"{v:,.0f}" if float(v) >= 100 else f"{v:.4g}"


def tables(data: ReportData) -> list[dict]:
    out = []
    if data.methods:
        out.append({"title": "DiTMoS, ablations and baselines (float, test split)",
                    "header": ["method", "accuracy", "MACs / inference", "flash bytes", "params"],
                    "rows": [[m.label, _pct(m.accuracy), _num(m.macs), _num(m.flash_bytes),
                              _num(m.params)] for m in data.methods]})
    if data.certify:
        rows = []
        for path, r in data.certify:
            s = r["summary"]
            curve = ", ".join(f"{k}: {100 * v:.1f}%"
                              for k, v in (s.get("certified_accuracy") or {}).items())
            rows.append([path.name, r.get("kind"), _num(r.get("sigma")), _num(r.get("n")),
                         _num(s.get("samples")), curve, f"{s.get('acr', 0):.3f}",
                         _pct(s.get("abstain_rate"))])
        out.append({"title": "Certified l2 robustness by randomized smoothing (test windows; "
                             "`ditmos certify`, docs/smoothing.md)",
                    "header": ["file", "smoothing", "sigma", "n", "windows",
                               "certified accuracy at radius", "ACR", "abstain"],
                    "rows": rows})
    if data.evals:
        rows = []
        for path, r in data.evals:
            lat, mem = r.get("latency") or {}, r.get("memory") or {}
            dev = (r.get("devices") or [{}])[0]
            unit = lat.get("unit")
            rows.append([
                path.name, dev.get("board") or "—",
                f"{r.get('samples')}/{r.get('samples_planned')}", _pct(r.get("accuracy")),
                _pct(r.get("accuracy_int8_reference")), _pct(r.get("accuracy_float")),
                str(r.get("mismatches")),
                "—" if not unit else f"{_num(lat['median'])} / {_num(lat['p95'])} / "
                                     f"{_num(lat['max'])} {unit}",
                _num(mem.get("flash")), _num(mem.get("ram")), _num(mem.get("stack_high_water")),
                _num(mem.get("arena"))])
        out.append({"title": "On-device evaluation",
                    "header": ["evaluation", "board", "samples", "accuracy", "int8 reference",
                               "float", "mismatches", "latency median / p95 / max", "flash",
                               "RAM", "stack high-water", "arena"],
                    "rows": rows})
        for path, r in data.evals:
            if r.get("mismatch_list"):
                out.append({"title": f"Mismatches with the host reference ({path.name})",
                            "header": ["sample", "label", "device", "reference", "device route",
                                       "reference route"],
                            "rows": [[m["index"], m["label"], m["device"], m["reference"],
                                      m["device_route"], m["reference_route"]]
                                     for m in r["mismatch_list"]]})
    return out


def _md_table(t: dict) -> list[str]:
    lines = [f"## {t['title']}", "", "| " + " | ".join(t["header"]) + " |",
             "|" + "---|" * len(t["header"])]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in t["rows"]]
    return lines + [""]


def write_report(data: ReportData, out_dir: str | Path) -> dict:
    out = Path(out_dir)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    figures = []
    for key, title, fn in FIGURES:
        png, why = fn(data)
        f = {"key": key, "title": title, "why": why, "b64": None, "file": None}
        if png is not None:
            rel = f"figures/{key}.png"
            (out / rel).write_bytes(png)
            f["b64"], f["file"] = base64.b64encode(png).decode("ascii"), rel
        figures.append(f)
    tabs = tables(data)
    md = [f"# {data.title}", "", f"Run directory: `{data.run_dir}`"
          + (f"; methods from `{data.methods_source}`." if data.methods_source else "."), ""]
    for t in tabs:
        md += _md_table(t)
    for f in figures:
        md += [f"## {f['title']}", ""]
        md += [f"![{f['title']}]({f['file']})" if f["file"] else f"Not shown: {f['why']}.", ""]
    if data.missing:
        md += ["## Missing", ""] + [f"- {m}" for m in data.missing] + [""]
    html = _PAGE.render(title=data.title, run_dir=str(data.run_dir),
                        methods_source=data.methods_source, tables=tabs, figures=figures,
                        missing=data.missing)
    for name, text in (("report.md", "\n".join(md)), ("report.html", html)):
        tmp = out / f".{name}.tmp{os.getpid()}"
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, out / name)
    return {"markdown": out / "report.md", "html": out / "report.html",
            "figures": [f["key"] for f in figures if f["file"]],
            "not_shown": {f["key"]: f["why"] for f in figures if not f["file"]},
            "missing": list(data.missing)}
