"""The trials of ``ditmos train --compare`` and how they run: one after the
other in this process, or as Ray tasks on a local Ray instance (started and
stopped here, nothing to set up) or on an existing cluster.

A *trial* is one training: a DiTMoS run (the method, a search candidate or an
ablation) or one trained baseline, at one width and one seed.  Trials do not
depend on each other: a baseline trial rebuilds the DiTMoS split and budget
from the resolved config (same seed -> same split, checked by a digest when
the comparison is assembled).

Every finished trial's result is written atomically to
``OUT/trials/<key>.json`` together with the trial's full description; a
rerun of the same comparison reads those files and trains only what is
missing (an interrupted DiTMoS run continues from its last checkpoint).
A trial file whose description differs from the new one is an error: the
comparison was started with other settings.

Each trial runs with TensorFlow op determinism, one intra-op and one
inter-op thread, and all seeds (Python, NumPy, TensorFlow, Keras) reset at its
start, wherever it runs: results do not depend on how many trials run at once
or on which worker.  On Ray every trial gets a fresh worker process
(``max_calls=1``).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, Sequence

import numpy as np

from ditmos.errors import DitmosError

TRIAL_FORMAT = "ditmos-trial/1"
TRIAL_THREADS = 1


@dataclass
class Trial:
    """One training of the comparison.

    ``kind`` is ``"ditmos"`` (a DiTMoS run into ``run_dir`` with ``overrides``
    merged over the user's config) or ``"baseline"`` (baseline ``method``
    trained with ``baseline_config``).  ``method`` is the row name in
    compare.json (``ditmos``, ``ablation_<name>``, ``candidate_<name>``,
    ``weak_equal_macs`` ...)."""

    kind: str
    method: str
    dataset: str
    preset: str
    width: float
    seed: int
    config_file: str | None = None
    overrides: dict | None = None
    run_dir: str | None = None
    baseline_config: dict | None = None
    extras: bool = False  # DiTMoS trial: also evaluate the run's strong model and K-ensemble

    @property
    def key(self) -> str:
        return f"w{self.width:g}_s{self.seed}_{self.method}"

    def describe(self) -> dict:
        d = asdict(self)
        if self.config_file is not None:
            d["config_file_content"] = json.loads(Path(self.config_file).read_text())
        return d


# --------------------------------------------------------------------------- #
# Running one trial (in this process or in a Ray worker)
# --------------------------------------------------------------------------- #


def _init_tensorflow(seed: int, threads: int = TRIAL_THREADS) -> str | None:
    """Deterministic TensorFlow state for a trial; returns a note if the thread
    count could not be applied (TensorFlow already running with others)."""
    import keras
    import tensorflow as tf

    note = None
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        if (
            tf.config.threading.get_intra_op_parallelism_threads() != threads
            or tf.config.threading.get_inter_op_parallelism_threads() != threads
        ):
            note = (
                f"TensorFlow was already initialised in this process with other thread "
                f"counts than {threads}; results may differ in the last digits from a "
                f"fresh process"
            )
    tf.config.experimental.enable_op_determinism()
    keras.backend.clear_session()
    keras.utils.set_random_seed(int(seed))
    return note


def split_digest(train, val, test) -> str:
    h = hashlib.sha256()
    for a in (train, val, test):
        h.update(np.asarray(a, dtype=np.int64).tobytes())
        h.update(b"|")
    return h.hexdigest()[:16]


def _ditmos_trial(t: Trial) -> dict:
    from ditmos.training import train_run
    from ditmos.training.baselines import run_extras
    from ditmos.training.compare import _ditmos_row, run_budget
    from ditmos.training.rundir import load_run_data

    run_dir = Path(t.run_dir)
    if not (run_dir / "metrics.json").is_file():
        train_run(
            t.dataset,
            t.preset,
            run_dir,
            config_file=t.config_file,
            width=t.width,
            seed=t.seed,
            resume=run_dir.exists(),
            quiet=True,
            overrides=t.overrides,
        )
    data = load_run_data(run_dir)
    budget = run_budget(run_dir, data)
    methods = {t.method: _ditmos_row(run_dir, budget)}
    if t.extras:
        methods.update(run_extras(run_dir, data, budget))
    s = np.load(run_dir / "splits.npz")
    return {
        "methods": methods,
        "budget": budget.to_dict(),
        "split": split_digest(s["train"], s["val"], s["test"]),
        "run_dir": str(run_dir),
    }


def _baseline_trial(t: Trial) -> dict:
    from ditmos.training.baselines import budget_from_architecture, train_baselines
    from ditmos.training.config import architecture, resolve_config
    from ditmos.training.run import prepare_data

    cfg = resolve_config(
        t.dataset, t.preset, config_file=t.config_file, width=t.width, seed=t.seed, overrides=t.overrides
    )
    _, splits, norm, arrays = prepare_data(cfg)
    data = SimpleNamespace(**arrays)
    budget = budget_from_architecture(architecture(cfg), data.x_train.shape[1:], arrays["num_classes"])
    bcfg = dict(t.baseline_config or {}, only=[t.method])
    kept: dict = {}
    methods = train_baselines(data, budget=budget, config=bcfg, seed=t.seed, quiet=True, keep_models=kept)
    if t.method not in methods:
        raise DitmosError(f"baseline {t.method} produced no result")
    res = {"methods": methods, "budget": budget.to_dict(), "split": split_digest(splits.train, splits.val, splits.test)}
    if t.run_dir and t.method in kept:
        # The trained network as a run directory, deployable like a DiTMoS run.
        from ditmos.training.network_run import write_network_run

        write_network_run(
            t.run_dir,
            model=kept[t.method],
            method=t.method,
            config=cfg,
            splits=splits,
            normalizer=norm,
            class_names=arrays["class_names"],
            input_shape=data.x_train.shape[1:],
            result=methods[t.method],
        )
        res["run_dir"] = str(t.run_dir)
    return res


def run_trial(trial: dict) -> dict:
    """Run one trial (a :class:`Trial` as a dict) and return its result.  The
    function Ray executes; also called directly for sequential sweeps."""
    import ditmos  # noqa: F401  (TensorFlow environment before TensorFlow loads)

    t = Trial(**trial)
    t0 = time.perf_counter()
    note = _init_tensorflow(t.seed)
    if t.kind == "ditmos":
        res = _ditmos_trial(t)
    elif t.kind == "baseline":
        res = _baseline_trial(t)
    else:
        raise DitmosError(f"unknown trial kind {t.kind!r}")
    res["seconds"] = round(time.perf_counter() - t0, 1)
    res["host"] = os.uname().nodename
    if note:
        res["note"] = note
    return res


# --------------------------------------------------------------------------- #
# The store of finished trials
# --------------------------------------------------------------------------- #


def _write_json_atomic(path: Path, obj) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def trial_path(store: Path, t: Trial) -> Path:
    return Path(store) / f"{t.key}.json"


def _settings(described: dict) -> dict:
    """What makes two trials the same: everything but where files are (the
    comparison directory may have been moved; config files are compared by
    content)."""
    return {k: v for k, v in described.items() if k not in ("run_dir", "config_file")}


def load_finished(store: Path, t: Trial) -> dict | None:
    """The stored result of ``t``, or None if it has not finished."""
    path = trial_path(store, t)
    if not path.is_file():
        return None
    try:
        saved = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None  # cannot happen with atomic writes; retrain to be safe
    if _settings(saved.get("trial") or {}) != _settings(json.loads(json.dumps(t.describe()))):
        raise DitmosError(
            f"{path} holds trial {t.key} with other settings (dataset, preset, "
            f"config or schedule changed); use a new output directory or delete "
            f"{path.parent}"
        )
    return saved["result"]


def save_finished(store: Path, t: Trial, result: dict) -> None:
    _write_json_atomic(trial_path(store, t), {"format": TRIAL_FORMAT, "trial": t.describe(), "result": result})


# --------------------------------------------------------------------------- #
# Executing a list of trials
# --------------------------------------------------------------------------- #


@dataclass
class Executor:
    """How trials run: ``use_ray`` False -> one after the other in this process;
    True -> Ray tasks, at most ``jobs`` at once (None: as many as the Ray
    instance has CPUs), on a local instance or on ``address``."""

    use_ray: bool = True
    jobs: int | None = None
    address: str | None = None
    info: dict = field(default_factory=dict)


def make_executor(jobs: int | None = None, ray_address: str | None = None, no_ray: bool = False) -> Executor:
    """The executor for the CLI options ``--jobs/--ray-address/--no-ray``."""
    if jobs is not None and jobs < 1:
        raise DitmosError(f"--jobs must be at least 1, got {jobs}")
    if no_ray and ray_address:
        raise DitmosError("--no-ray and --ray-address contradict each other")
    if jobs == 1 and ray_address:
        raise DitmosError("--jobs 1 runs trials here, one after the other; drop --ray-address or raise --jobs")
    if no_ray or jobs == 1:
        return Executor(use_ray=False, jobs=1)
    return Executor(use_ray=True, jobs=jobs, address=ray_address)


class _Progress:
    """``trials: done D / running R / left L`` (a rich bar unless quiet) and one
    line per finished trial."""

    def __init__(self, total: int, done: int, quiet: bool):
        self.total, self.done, self.running, self.quiet = total, done, 0, quiet
        self._bar = None
        if not quiet:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(
                TextColumn("[bold]trials"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"),
                TimeElapsedColumn(),
            )
            self._bar.start()
            self._task = self._bar.add_task("trials", total=max(total, 1), completed=done, info=self._info())

    def _info(self) -> str:
        left = self.total - self.done - self.running
        return f"done {self.done} / running {self.running} / left {left}"

    def _update(self, advance: int = 0) -> None:
        if self._bar is not None:
            self._bar.update(self._task, advance=advance, info=self._info())

    def started(self) -> None:
        self.running += 1
        self._update()

    def finished(self, t: Trial, res: dict) -> None:
        self.running -= 1
        self.done += 1
        row = res["methods"].get(t.method, {})
        if self._bar is not None:
            self._bar.console.print(
                f"trial {t.key}: val {row.get('val_accuracy', float('nan')):.4f} test "
                f"{row.get('test_accuracy', float('nan')):.4f} ({res.get('seconds', 0):.0f} s); "
                f"trials {self._info()}",
                highlight=False,
            )
        self._update(1)

    def message(self, text: str) -> None:
        if self._bar is not None:
            self._bar.console.print(text, highlight=False)
        elif not self.quiet:
            from rich.console import Console

            Console(stderr=True).print(text, highlight=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def machine_cpus() -> int:
    """CPUs this process may use (its affinity mask, else the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _start_ray(ex: Executor):
    """Connect to ``ex.address`` or start a quiet local Ray instance; returns
    (ray module, whether we started it, CPUs available)."""
    import logging

    try:
        import ray
    except ImportError:
        raise DitmosError(
            "Ray is not installed (pip install ray); or run the trials here, one after the other, with --no-ray"
        ) from None
    started = not ray.is_initialized()
    if started:
        # A busy machine can take longer than Ray's defaults to start the
        # node's helper processes: give them minutes instead of seconds.
        os.environ.setdefault("RAY_agent_register_timeout_ms", "300000")
        os.environ.setdefault("RAY_raylet_start_wait_time_s", "300")
        kwargs = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR, configure_logging=True)
        where = f"the Ray cluster at {ex.address}" if ex.address else "a local Ray instance"
        for attempt in range(3):
            try:
                if ex.address:
                    ray.init(address=ex.address, **kwargs)
                else:
                    ray.init(num_cpus=machine_cpus(), object_store_memory=128 * 2**20, **kwargs)
                break
            except (ConnectionError, RuntimeError, ValueError) as err:
                raise DitmosError(f"cannot start/connect to {where}: {err}") from None
            except Exception as err:  # Ray raises a bare Exception when startup times out
                ray.shutdown()
                if attempt == 2 or "timed out during startup" not in str(err):
                    raise DitmosError(f"cannot start {where}: {err}") from None
    cpus = int(ray.cluster_resources().get("CPU", 1))
    return ray, started, cpus


def execute(
    trials: Sequence[Trial],
    store: Path,
    executor: Executor,
    *,
    quiet: bool = False,
    runner: Callable[[dict], dict] | None = None,
) -> dict:
    """Run every trial not yet finished in ``store``; returns ``{key: result}``
    for all of them.  Finished results are saved as soon as each trial ends,
    so an interruption (Ctrl-C, crash) loses only the trials still running."""
    store = Path(store)
    results, todo = {}, []
    for t in trials:
        old = load_finished(store, t)
        if old is not None:
            results[t.key] = old
        else:
            todo.append(t)
    executor.info = {
        "trials": len(trials),
        "reused": len(results),
        "trained": len(todo),
        "engine": "ray" if executor.use_ray and todo else "sequential",
    }
    if not todo:
        return results
    progress = _Progress(len(trials), len(results), quiet)
    try:
        sequential = not executor.use_ray
        if executor.use_ray:
            try:
                _execute_ray(todo, store, executor, progress, results)
            except _RayUnavailable as err:
                # Only a local instance that did not come up (e.g. on an
                # overloaded machine): the trials are deterministic, so running
                # them here gives the same results, just later.
                progress.message(f"{err}; running the trials one after the other instead")
                executor.info.update(engine="sequential", ray_error=str(err))
                sequential = True
        if sequential:
            run = runner or run_trial
            for t in todo:
                progress.started()
                res = run(asdict(t))
                save_finished(store, t, res)
                results[t.key] = res
                progress.finished(t, res)
    finally:
        progress.close()
    return results


class _RayUnavailable(DitmosError):
    """A local Ray instance could not be started."""


def _execute_ray(todo: list[Trial], store: Path, ex: Executor, progress: _Progress, results: dict) -> None:
    try:
        ray, started, cpus = _start_ray(ex)
    except DitmosError as err:
        if ex.address or "not installed" in str(err):
            raise
        raise _RayUnavailable(str(err)) from None
    jobs = min(ex.jobs or cpus, cpus) if not ex.address else (ex.jobs or cpus)
    ex.info.update(ray_address=ex.address or "local", ray_cpus=cpus, jobs=jobs)
    progress.message(
        f"running {len(todo)} trials as Ray tasks, {jobs} at once "
        f"({'cluster ' + ex.address if ex.address else 'local Ray instance'}, "
        f"{cpus} CPUs)"
    )
    remote = ray.remote(num_cpus=TRIAL_THREADS, max_calls=1)(run_trial)
    pending = list(todo)
    running: dict = {}
    try:
        while pending or running:
            while pending and len(running) < jobs:
                t = pending.pop(0)
                running[remote.remote(asdict(t))] = t
                progress.started()
            ready, _ = ray.wait(list(running), num_returns=1)
            for ref in ready:
                t = running.pop(ref)
                try:
                    res = ray.get(ref)
                except ray.exceptions.RayTaskError as err:
                    cause = err.cause if getattr(err, "cause", None) is not None else err
                    if isinstance(cause, DitmosError):
                        raise DitmosError(f"trial {t.key}: {cause}") from None
                    raise DitmosError(f"trial {t.key} failed: {type(cause).__name__}: {cause}") from err
                save_finished(store, t, res)
                results[t.key] = res
                progress.finished(t, res)
    finally:
        for ref in running:
            ray.cancel(ref, force=True)
        if started:
            ray.shutdown()
