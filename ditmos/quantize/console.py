"""Progress and the float-vs-int8 summary of ``ditmos quantize`` (rich, or silent)."""

from __future__ import annotations

import contextlib
import sys


class Console:
    def __init__(self, *, quiet: bool):
        self.quiet = quiet
        if not quiet:
            from rich.console import Console as RichConsole

            self._rich = RichConsole(stderr=True)

    def log(self, message: str) -> None:
        if not self.quiet:
            self._rich.print(f"[dim]quantize:[/dim] {message}", highlight=False)

    @contextlib.contextmanager
    def progress(self, description: str, total: int):
        """Yields ``advance(n)``; a bar with ETA unless quiet."""
        if self.quiet or total == 0:
            yield lambda n=1: None
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=self._rich,
            transient=True,
        ) as bar:
            task = bar.add_task(description, total=total)
            yield lambda n=1: bar.advance(task, n)

    def summary(self, results: dict) -> None:
        if self.quiet:
            return
        from rich.table import Table

        f, q = results["float"], results["int8"]
        table = Table(title=f"test split, {results['samples']} windows: float (Keras) vs int8 (TFLM)")
        table.add_column("model")
        table.add_column("float", justify="right")
        table.add_column("int8", justify="right")
        table.add_column("delta (points)", justify="right")

        def row(name, a, b):
            table.add_row(name, f"{100 * a:.2f}%", f"{100 * b:.2f}%", f"{100 * (b - a):+.2f}")

        row("DiTMoS (composed)", f["ditmos"], q["ditmos"])
        row("union (oracle)", f["union"], q["union"])
        for k, (a, b) in enumerate(zip(f["classifiers"], q["classifiers"])):
            row(f"classifier_{k} alone", a, b)
        table.add_row("routed identically", "", f"{100 * results['route_agreement']:.2f}%", "")
        from rich.console import Console as RichConsole

        RichConsole(file=sys.stdout).print(table)
