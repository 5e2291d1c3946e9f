"""Progress display (rich bars with ETA per stage) and the run's train.log."""

from __future__ import annotations

import time
from pathlib import Path


class Reporter:
    """One progress bar per stage (unless quiet) and a line-per-event log file."""

    def __init__(self, log_path: Path | None, quiet: bool):
        self.quiet = quiet
        self.log_path = log_path
        self._progress = None
        self._task = None
        self._t0 = time.monotonic()
        self.stage_times: dict[str, float] = {}
        # CPU seconds of this process (all threads) per stage: on a shared machine
        # wall time includes waiting for a core, CPU time does not
        self.stage_cpu: dict[str, float] = {}
        self._stage_start = None
        self._stage_cpu0 = 0.0
        self._stage = None

    def log(self, msg: str) -> None:
        line = f"[{time.monotonic() - self._t0:8.1f}s] {msg}"
        if self.log_path is not None:
            with open(self.log_path, "a", encoding="utf-8") as f:
                f.write(line + "\n")
        if not self.quiet:
            if self._progress is not None:
                self._progress.console.print(msg)
            else:
                from rich.console import Console

                Console(stderr=True).print(msg)

    def start_stage(self, name: str, total: int, done: int = 0) -> None:
        self._stage, self._stage_start = name, time.monotonic()
        self._stage_cpu0 = time.process_time()
        self.log(f"stage {name}: start ({done}/{total} done)")
        if self.quiet:
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            transient=False,
        )
        self._progress.start()
        self._task = self._progress.add_task(name, total=max(total, 1), completed=done, info="")

    def advance(self, info: str = "") -> None:
        if self._progress is not None:
            self._progress.update(self._task, advance=1, info=info)

    def end_stage(self, msg: str = "") -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        dt = time.monotonic() - self._stage_start
        cpu = time.process_time() - self._stage_cpu0
        self.stage_times[self._stage] = self.stage_times.get(self._stage, 0.0) + dt
        self.stage_cpu[self._stage] = self.stage_cpu.get(self._stage, 0.0) + cpu
        self.log(f"stage {self._stage}: done in {dt:.1f}s (CPU {cpu:.1f}s) {msg}".rstrip())
