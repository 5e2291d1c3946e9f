"""ditmos.data: datasets as fixed-shape windows, splits and normalisation.

``load_dataset(spec)`` returns a validated :class:`Dataset`;
``make_splits(ds, seed)`` the train/val/test indices (test is for the final
report only); ``Normalizer.fit(X_train)`` the per-channel statistics saved
with the model.  See docs/artefacts.md section 1.
"""

from ditmos.data.core import Dataset, Normalizer, Splits, make_splits
from ditmos.data.registry import DatasetEntry, canonical_spec, list_datasets, load_dataset

__all__ = [
    "Dataset",
    "DatasetEntry",
    "Normalizer",
    "Splits",
    "canonical_spec",
    "list_datasets",
    "load_dataset",
    "make_splits",
]
