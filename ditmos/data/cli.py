"""``ditmos data list`` and ``ditmos data info NAME [--json]``."""

from __future__ import annotations

import json

import click

from ditmos.data.core import SPLIT_NAMES


@click.group("data")
def data() -> None:
    """List and describe datasets (shipped ones and loaders for your downloads)."""


@data.command("list")
def list_cmd() -> None:
    """List the dataset specs `load_dataset` and `--dataset` accept."""
    from ditmos.data.registry import list_datasets

    entries = list_datasets()
    width = max(len(e.usage) for e in entries)
    for e in entries:
        click.echo(f"{e.usage:<{width}}  {e.summary}")


@data.command("info")
@click.argument("spec")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
@click.option("--seed", default=0, show_default=True, help="Split seed the per-split counts refer to.")
def info_cmd(spec: str, as_json: bool, seed: int) -> None:
    """Describe dataset SPEC (e.g. hapt, fsdd, unimib:DIR, npz:FILE)."""
    from ditmos.data.describe import describe
    from ditmos.data.registry import load_dataset

    d = describe(load_dataset(spec), seed)
    if as_json:
        click.echo(json.dumps(d, indent=2))
        return
    click.echo(
        f"{d['name']}: {d['num_samples']} windows of shape {tuple(d['input_shape'])} "
        f"({d['dtype']}), {d['num_classes']} classes"
        + (f", {d['subjects']} subjects" if d["subjects"] is not None else ", no subject ids")
    )
    click.echo(f"channels: {', '.join(d['channel_names'])}")
    click.echo("classes:  " + ", ".join(f"{c} ({n})" for c, n in d["class_counts"].items()))
    click.echo(f"splits (seed {seed}, {d['split_rule']}):")
    if "error" in d["splits"]:
        click.echo(f"  impossible: {d['splits']['error']}")
    for name in SPLIT_NAMES if "error" not in d["splits"] else ():
        s = d["splits"][name]
        subj = f", subjects {s['subjects']}" if "subjects" in s else ""
        click.echo(f"  {name:<5} {s['samples']:>7} windows{subj}")
    info = d["info"]
    for key in ("source", "licence", "citation", "path", "sampling_rate_hz"):
        if key in info:
            click.echo(f"{key}: {info[key]}")
    click.echo(f"windows made: {info.get('windows_made', d['num_samples'])}")
    for label in ("windows_dropped", "samples_dropped"):
        dropped = info.get(label) or {}
        total = sum(dropped.values())
        click.echo(f"{label.replace('_', ' ')}: {total}")
        for reason, n in dropped.items():
            click.echo(f"  {n:>8}  {reason}")
    shown = {
        "source",
        "licence",
        "citation",
        "path",
        "sampling_rate_hz",
        "windows_made",
        "windows_dropped",
        "samples_dropped",
    }
    for key, value in info.items():
        if key not in shown:
            click.echo(f"{key}: {value}")
