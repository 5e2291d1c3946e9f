"""Regenerate ``docs/results/`` from finished comparisons.

    python -m ditmos.training.results COMPARE_DIR [COMPARE_DIR ...] [--out docs/results]

(``scripts/results.sh`` runs exactly this.)  Each COMPARE_DIR holds a
``compare.json`` written by ``ditmos train --compare`` (``RUN/compare``).  The
output directory is rewritten: every ``compare_*.md`` there is removed, each
comparison's tables are rendered again from its ``compare.json`` into
``compare_<dataset>_<preset>.md`` (``..._<n>.md`` if a dataset/preset pair
comes twice), its ``compare.json`` is copied next to it, and ``README.md``
gets the summary table of all of them (DiTMoS vs the single CNN with equal
MACs, mean ± std over the seeds).  Nothing in the comparison part is written
by hand: in ``README.md`` it is the text between the lines ``BEGIN`` and
``END`` (below); other sections of an existing README (results written by
other commands) are kept as they are.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ditmos.errors import DitmosError
from ditmos.training.compare import _pm, _write_json_atomic, _write_text_atomic, render_markdown

COMMAND = "scripts/results.sh COMPARE_DIR [COMPARE_DIR ...]"
BEGIN = "<!-- begin: written by scripts/results.sh -->"
END = "<!-- end: written by scripts/results.sh -->"


def _merge_readme(old: str | None, generated: list[str]) -> str:
    """``generated`` between the markers; an old README's text outside them stays."""
    block = "\n".join([BEGIN, *generated, END])
    if old is None or BEGIN not in old or END not in old:
        return block + "\n"
    head, rest = old.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    return head + block + tail


def _load(path: Path) -> dict:
    path = Path(path)
    f = path / "compare.json" if path.is_dir() else path
    try:
        report = json.loads(f.read_text())
    except FileNotFoundError:
        raise DitmosError(
            f"{f} not found: give the output directory of `ditmos train --compare` (RUN/compare)"
        ) from None
    except json.JSONDecodeError as e:
        raise DitmosError(f"{f} is not valid JSON (line {e.lineno}: {e.msg})") from None
    if not str(report.get("format", "")).startswith("ditmos-compare/"):
        raise DitmosError(f"{f} is not a ditmos comparison (format {report.get('format')!r})")
    return report


def _summary_table(named: list[tuple[str, dict]]) -> list[str]:
    lines = [
        "| comparison | dataset | preset | seeds | width | DiTMoS test | "
        "equal-MACs CNN test | Δ (pp) | best baseline (test) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, rep in named:
        seeds = rep.get("seeds") or [rep.get("seed")]
        for r in rep.get("summary", []):
            k = r.get("n_seeds", 1)
            delta = "—" if r.get("delta_vs_equal_macs") is None else f"{100 * r['delta_vs_equal_macs']:+.2f}"
            lines.append(
                f"| [{name}]({name}) | {rep['dataset']} | {rep['preset']} | "
                f"{', '.join(map(str, seeds))} | {r['width']:g} | "
                f"{_pm(r['ditmos_test'], r.get('ditmos_test_std'), k)} | "
                f"{_pm(r['weak_equal_macs_test'], r.get('weak_equal_macs_test_std'), k)} | "
                f"{delta} | {r.get('best_baseline') or '—'} "
                f"({_pm(r.get('best_baseline_test'), r.get('best_baseline_test_std'), k)}) |"
            )
    return lines


def _trained(rep: dict) -> list[str]:
    from ditmos.training.baselines import TRAINED

    only = (rep.get("baseline_config") or {}).get("only") or list(TRAINED)
    return [n for n in TRAINED if n in only]


def _command(rep: dict) -> str:
    """The `ditmos train --compare` command line that reproduces ``rep``."""
    from ditmos.training.baselines import TRAINED

    ws = ",".join(f"{w:g}" for w in rep["widths"])
    seeds = ",".join(map(str, rep.get("seeds") or [rep.get("seed")]))
    cmd = (
        f"ditmos train --dataset {rep['dataset']} --preset {rep['preset']} --out RUN "
        f"--compare --widths {ws} --seeds {seeds}"
    )
    cands = [
        c.get("name") for w in rep.get("search", {}).values() for c in (w.get("ditmos") or {}).get("candidates", [])
    ]
    if cands and set(cands) != {"ditmos"}:
        from ditmos.training.search import TRIALS

        n = max(len((w.get("ditmos") or {}).get("candidates", [])) for w in rep["search"].values())
        cmd += " --search" + ("" if n == TRIALS.get(rep["preset"]) else f" --search-trials {n}")
    trained = _trained(rep)
    if trained != list(TRAINED):
        cmd += f" --baselines {','.join(trained)}"
    abl = {m for res in rep.get("results", {}).values() for m in res.get("methods", {}) if m.startswith("ablation_")}
    if not abl:
        cmd += " --ablations none"
    if rep.get("config_file") is not None:
        cmd += " --config CONFIG.json"
    return cmd


def write_results(compare_dirs, out_dir) -> list[Path]:
    """Render every comparison into ``out_dir`` (see the module doc); returns
    the files written."""
    if not compare_dirs:
        raise DitmosError("give at least one comparison directory (RUN/compare)")
    reports = [(Path(d), _load(d)) for d in compare_dirs]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for old in list(out.glob("compare_*.md")) + list(out.glob("compare_*.json")):
        old.unlink()
    named, seen, written = [], {}, []
    for src, rep in reports:
        stem = f"compare_{rep['dataset']}_{rep['preset']}".replace(":", "_").replace("/", "_")
        seen[stem] = seen.get(stem, 0) + 1
        if seen[stem] > 1:
            stem = f"{stem}_{seen[stem]}"
        md = out / f"{stem}.md"
        _write_text_atomic(md, render_markdown(rep))
        _write_json_atomic(out / f"{stem}.json", rep)
        named.append((md.name, rep))
        written += [md, out / f"{stem}.json"]
    lines = [
        "# Measured results",
        "",
        "The comparison part of this page is written by `" + COMMAND + "` from the "
        "comparisons listed below; do not edit it by hand (the command rewrites it and "
        "every `compare_*` file here). Each `compare_*.md` is the full comparison "
        "(every method, every width, the search effort of both sides), "
        "each `compare_*.json` its data (schema in docs/artefacts.md).",
        "",
        "Accuracies on the test split in %, mean ± standard deviation (n−1) over the "
        "seeds; every model selected on the validation split.",
        "",
        "## DiTMoS vs the single CNN with equal MACs",
        "",
        *_summary_table(named),
        "",
        "## Comparisons",
        "",
    ]
    for name, rep in named:
        eng = rep.get("engine") or {}
        wall = rep.get("wall_seconds")
        lines.append(
            f"- [{name}]({name}): {rep['dataset']}, {rep['preset']} preset, widths "
            f"{', '.join(f'{w:g}' for w in rep['widths'])}, seeds "
            f"{', '.join(map(str, rep.get('seeds') or [rep.get('seed')]))}"
            + (
                f"; {eng.get('trials')} trials, assembled from finished trials"
                if eng.get("trials") and eng.get("trained") == 0
                else (f"; {eng.get('trials')} trials ({eng.get('engine')})" if eng.get("trials") else "")
                + (f"; wall time {wall:.0f} s" if wall is not None else "")
            )
            + f"; trained baselines: {', '.join(_trained(rep)) or 'none'}; "
            f"trained by `{_command(rep)}`"
            + (f" with CONFIG.json = `{json.dumps(rep['config_file'])}`" if rep.get("config_file") is not None else "")
            + "."
        )
    readme = out / "README.md"
    old = readme.read_text() if readme.exists() else None
    _write_text_atomic(readme, _merge_readme(old, lines))
    return written + [readme]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="scripts/results.sh",
        description="Regenerate docs/results/ from comparisons (output directories of `ditmos train --compare`).",
    )
    ap.add_argument("compare_dirs", nargs="+", metavar="COMPARE_DIR")
    ap.add_argument("--out", default="docs/results", help="output folder (rewritten)")
    args = ap.parse_args(argv)
    try:
        files = write_results(args.compare_dirs, args.out)
    except DitmosError as err:
        print(f"ditmos: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {len(files)} files to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
