"""ditmos.models: DiTMoS architectures as configuration and their Keras models.

``arch``: block specs, the ``har``/``mfcc`` families, width scaling, shape
checks and deployed costs (params, MACs, flash bytes).  ``bank``: M networks
of one architecture as a single TensorFlow computation (training).
``keras_models``: the plain Keras functional models (``models/``, ``export/``).
``baselines``: comparison networks (see that module).
"""

from ditmos.models.arch import (
    FAMILIES,
    Architecture,
    Block,
    Net,
    architecture_from_dict,
    architecture_to_dict,
    block_lengths,
    check_fits,
    costs,
    default_architecture_dict,
    family_for_dataset,
)

__all__ = [
    "FAMILIES",
    "Architecture",
    "Block",
    "Net",
    "architecture_from_dict",
    "architecture_to_dict",
    "block_lengths",
    "check_fits",
    "costs",
    "default_architecture_dict",
    "family_for_dataset",
]
