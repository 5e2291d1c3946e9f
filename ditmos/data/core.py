"""The dataset contract shared by every loader: Dataset, Splits, Normalizer.

A :class:`Dataset` holds fixed-shape windows ``X [N, T, C]`` (float32), labels
``y [N]`` (int64, ``0..len(class_names)-1``), optional subject ids ``groups``
and an optional predefined ``split``.  Construction validates everything and
raises :class:`~ditmos.errors.DitmosError` naming the source file and the
problem, so a loader can never hand a silently broken array to training.

:func:`make_splits` turns a dataset into train/val/test index arrays:
the predefined split when the dataset has one, otherwise subject-disjoint
(when ``groups`` exist) or stratified by class, deterministic by seed.  The
test split is for the final report only; pick models on ``val``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ditmos.errors import DitmosError

SPLIT_NAMES = ("train", "val", "test")

# Fractions used by make_splits when the dataset has no predefined split.
# With groups they are fractions of the subjects (rounded half up, at least
# one subject each); without groups fractions of each class's samples.
VAL_FRACTION = 0.15
TEST_FRACTION = 0.20
# How many seeded subject permutations make_splits tries to find one whose
# train part contains every class.
_MAX_SPLIT_DRAWS = 1000


@dataclass
class Dataset:
    """Fixed-shape windows with labels; validated on construction.

    ``info`` carries provenance and bookkeeping: ``source``, ``licence``,
    ``sampling_rate_hz``, ``windows_made``, ``windows_dropped`` (a dict
    reason -> count) and loader-specific keys.  ``info["path"]``, when
    present, is the file or folder the data came from and is named in
    error messages.
    """

    name: str
    X: np.ndarray
    y: np.ndarray
    class_names: list[str]
    groups: np.ndarray | None = None
    split: np.ndarray | None = None
    channel_names: list[str] = field(default_factory=list)
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        where = str(self.info.get("path", self.name))
        self.X = _as_windows(self.X, where)
        n, _, c = self.X.shape
        self.class_names = [str(c_) for c_ in self.class_names]
        if not self.class_names:
            raise DitmosError(f"{where}: the dataset has no class names")
        if len(set(self.class_names)) != len(self.class_names):
            raise DitmosError(f"{where}: class names are not unique: {self.class_names}")
        self.y = _as_labels(self.y, n, len(self.class_names), where)
        counts = np.bincount(self.y, minlength=len(self.class_names))
        empty = [self.class_names[i] for i in np.flatnonzero(counts == 0)]
        if empty:
            raise DitmosError(f"{where}: class(es) {', '.join(map(repr, empty))} have no samples")
        if self.groups is not None:
            self.groups = _as_int_vector(self.groups, n, "groups", where)
        if self.split is not None:
            self.split = _as_split(self.split, n, where)
        if not self.channel_names:
            self.channel_names = [f"ch{i}" for i in range(c)]
        self.channel_names = [str(ch) for ch in self.channel_names]
        if len(self.channel_names) != c:
            raise DitmosError(f"{where}: {len(self.channel_names)} channel names for {c} channels")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def input_shape(self) -> tuple[int, int]:
        """``(T, C)`` of one window."""
        return (int(self.X.shape[1]), int(self.X.shape[2]))

    def __len__(self) -> int:
        return int(self.X.shape[0])

    def subset(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(X[index], y[index])``."""
        return self.X[index], self.y[index]


@dataclass(frozen=True)
class Splits:
    """Train / validation / test index arrays (int64, sorted, disjoint).

    ``test`` is held out for the final report: never select models,
    epochs or hyper-parameters on it.
    """

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def sizes(self) -> dict[str, int]:
        return {name: int(len(getattr(self, name))) for name in SPLIT_NAMES}

    def save(self, path: str | Path) -> None:
        """Write ``train``/``val``/``test`` arrays to an ``.npz`` file (splits.npz)."""
        np.savez(Path(path), train=self.train, val=self.val, test=self.test)

    @classmethod
    def load(cls, path: str | Path) -> "Splits":
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as f:
                arrays = {name: np.asarray(f[name], dtype=np.int64) for name in SPLIT_NAMES}
        except FileNotFoundError:
            raise DitmosError(f"{path}: splits file not found") from None
        except KeyError as err:
            raise DitmosError(f"{path}: splits file lacks the array {err}") from None
        except (OSError, ValueError) as err:
            raise DitmosError(f"{path}: not a readable splits .npz file ({err})") from None
        return cls(**arrays)


class Normalizer:
    """Per-channel standardisation with statistics from the training split.

    ``std`` below 1e-8 (a constant channel) is replaced by 1.0 so that the
    channel passes through centred instead of dividing by zero.
    """

    _MIN_STD = 1e-8

    def __init__(self, mean, std) -> None:
        self.mean = np.asarray(mean, dtype=np.float32).reshape(-1)
        self.std = np.asarray(std, dtype=np.float32).reshape(-1)
        if self.mean.shape != self.std.shape:
            raise DitmosError(f"normalisation mean has {self.mean.size} channels but std has {self.std.size}")
        if not (np.all(np.isfinite(self.mean)) and np.all(np.isfinite(self.std))):
            raise DitmosError("normalisation statistics contain NaN or Inf")
        if np.any(self.std <= 0):
            raise DitmosError("normalisation std must be positive")

    @classmethod
    def fit(cls, X_train: np.ndarray) -> "Normalizer":
        X_train = np.asarray(X_train)
        if X_train.ndim != 3 or X_train.shape[0] == 0:
            raise DitmosError(f"Normalizer.fit needs windows [N>0, T, C], got shape {X_train.shape}")
        x = X_train.astype(np.float64)
        mean = x.mean(axis=(0, 1))
        std = x.std(axis=(0, 1))
        std = np.where(std < cls._MIN_STD, 1.0, std)
        return cls(mean, std)

    def apply(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X)
        if X.shape[-1] != self.mean.size:
            raise DitmosError(f"data has {X.shape[-1]} channels, the normalisation {self.mean.size}")
        return ((X - self.mean) / self.std).astype(np.float32)

    def to_dict(self) -> dict:
        return {"mean": [float(v) for v in self.mean], "std": [float(v) for v in self.std]}

    @classmethod
    def from_dict(cls, d: dict) -> "Normalizer":
        try:
            return cls(d["mean"], d["std"])
        except (KeyError, TypeError) as err:
            raise DitmosError(f"normalisation dict needs 'mean' and 'std' lists ({err})") from None

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "Normalizer":
        path = Path(path)
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except FileNotFoundError:
            raise DitmosError(f"{path}: normalisation file not found") from None
        except json.JSONDecodeError as err:
            raise DitmosError(f"{path}: not valid JSON ({err})") from None
        except DitmosError as err:
            raise DitmosError(f"{path}: {err}") from None


def make_splits(
    ds: Dataset, seed: int, *, val_fraction: float = VAL_FRACTION, test_fraction: float = TEST_FRACTION
) -> Splits:
    """Train/val/test indices for ``ds``; the same seed gives the same split.

    * ``ds.split`` given: honoured exactly (each part must be non-empty).
    * ``ds.groups`` given: subject-disjoint; ``round(test_fraction * S)``
      subjects for test and ``round(val_fraction * S)`` for validation (at
      least one each), drawn by a seeded permutation; draws whose train part
      misses a class are rejected.
    * otherwise: stratified, per class ``round(fraction * n_class)`` samples
      (at least one) to test and to validation.
    """
    where = str(ds.info.get("path", ds.name))
    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise DitmosError(
            f"split fractions val={val_fraction}, test={test_fraction} must be in (0, 1) and sum to less than 1"
        )
    if ds.split is not None:
        parts = {name: np.flatnonzero(ds.split == name).astype(np.int64) for name in SPLIT_NAMES}
        empty = [name for name, idx in parts.items() if idx.size == 0]
        if empty:
            raise DitmosError(f"{where}: the predefined split has no '{empty[0]}' samples")
        return Splits(**parts)
    rng = np.random.default_rng(seed)
    if ds.groups is not None:
        return _group_split(ds, rng, val_fraction, test_fraction, where)
    return _stratified_split(ds, rng, val_fraction, test_fraction, where)


def _round_half_up(x: float) -> int:
    return int(np.floor(x + 0.5))


def _group_split(
    ds: Dataset, rng: np.random.Generator, val_fraction: float, test_fraction: float, where: str
) -> Splits:
    subjects = np.unique(ds.groups)
    s = subjects.size
    n_test = max(1, _round_half_up(test_fraction * s))
    n_val = max(1, _round_half_up(val_fraction * s))
    if s < n_test + n_val + 1:
        raise DitmosError(
            f"{where}: {s} subject(s) are too few for a subject-disjoint "
            f"train/val/test split (need at least {n_test + n_val + 1})"
        )
    for _ in range(_MAX_SPLIT_DRAWS):
        perm = rng.permutation(subjects)
        test_s, val_s = perm[:n_test], perm[n_test : n_test + n_val]
        test = np.flatnonzero(np.isin(ds.groups, test_s))
        val = np.flatnonzero(np.isin(ds.groups, val_s))
        train_mask = ~np.isin(ds.groups, perm[: n_test + n_val])
        if np.unique(ds.y[train_mask]).size == ds.num_classes:
            return Splits(np.flatnonzero(train_mask).astype(np.int64), val.astype(np.int64), test.astype(np.int64))
    raise DitmosError(
        f"{where}: no subject-disjoint split found whose training part holds every "
        f"class ({_MAX_SPLIT_DRAWS} draws); some classes occur in too few subjects"
    )


def _stratified_split(
    ds: Dataset, rng: np.random.Generator, val_fraction: float, test_fraction: float, where: str
) -> Splits:
    parts: dict[str, list[np.ndarray]] = {name: [] for name in SPLIT_NAMES}
    for k, cname in enumerate(ds.class_names):
        idx = np.flatnonzero(ds.y == k)
        if idx.size < 3:
            raise DitmosError(
                f"{where}: class {cname!r} has {idx.size} sample(s); a train/val/test split needs at least 3"
            )
        idx = rng.permutation(idx)
        n_test = max(1, _round_half_up(test_fraction * idx.size))
        n_val = max(1, _round_half_up(val_fraction * idx.size))
        n_test = min(n_test, idx.size - 2)
        n_val = min(n_val, idx.size - n_test - 1)
        parts["test"].append(idx[:n_test])
        parts["val"].append(idx[n_test : n_test + n_val])
        parts["train"].append(idx[n_test + n_val :])
    return Splits(**{name: np.sort(np.concatenate(p)).astype(np.int64) for name, p in parts.items()})


# ---------------------------------------------------------------- validation


def _as_windows(X, where: str) -> np.ndarray:
    X = np.asarray(X)
    if X.ndim != 3:
        raise DitmosError(f"{where}: windows must have shape [N, T, C], got shape {X.shape}")
    if min(X.shape) == 0:
        raise DitmosError(f"{where}: windows array is empty (shape {X.shape})")
    if not (np.issubdtype(X.dtype, np.floating) or np.issubdtype(X.dtype, np.integer)):
        raise DitmosError(f"{where}: windows must be numeric, got dtype {X.dtype}")
    X = np.ascontiguousarray(X, dtype=np.float32)
    bad = ~np.isfinite(X)
    if bad.any():
        first = int(np.flatnonzero(bad.any(axis=(1, 2)))[0])
        raise DitmosError(
            f"{where}: {int(bad.any(axis=(1, 2)).sum())} window(s) contain NaN or Inf (first: window {first})"
        )
    return X


def _as_int_vector(v, n: int, what: str, where: str) -> np.ndarray:
    v = np.asarray(v)
    if v.shape != (n,):
        raise DitmosError(f"{where}: {what} must have shape ({n},), got {v.shape}")
    if np.issubdtype(v.dtype, np.floating):
        if not np.all(np.isfinite(v)) or not np.all(v == np.round(v)):
            raise DitmosError(f"{where}: {what} must be integers")
    elif not np.issubdtype(v.dtype, np.integer):
        raise DitmosError(f"{where}: {what} must be integers, got dtype {v.dtype}")
    return v.astype(np.int64)


def _as_labels(y, n: int, num_classes: int, where: str) -> np.ndarray:
    y = _as_int_vector(y, n, "labels", where)
    outside = (y < 0) | (y >= num_classes)
    if outside.any():
        bad = np.unique(y[outside])[:5].tolist()
        raise DitmosError(
            f"{where}: {int(outside.sum())} label(s) outside the {num_classes} classes "
            f"0..{num_classes - 1} (e.g. {bad})"
        )
    return y


def _as_split(split, n: int, where: str) -> np.ndarray:
    split = np.asarray(split)
    if split.shape != (n,):
        raise DitmosError(f"{where}: split must have shape ({n},), got {split.shape}")
    split = split.astype(str)
    unknown = sorted(set(np.unique(split).tolist()) - set(SPLIT_NAMES))
    if unknown:
        raise DitmosError(f"{where}: split values must be 'train', 'val' or 'test', found {unknown[:5]}")
    return split
