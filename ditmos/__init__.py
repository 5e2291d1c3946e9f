"""ditmos: DiTMoS (Diverse Tiny-Model Selection) from training to firmware."""

import os as _os

__version__ = "0.1.0"

# The classifier bank trains K members as one grouped convolution.  TensorFlow's
# own CPU kernels have no gradient for grouped convolutions; its oneDNN kernels
# do.  TensorFlow switches oneDNN on by itself only on CPUs with AVX-512 class
# features, so ask for it explicitly (before TensorFlow is imported; a value
# the user set wins).
_os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

from ditmos.errors import DitmosError  # noqa: E402

__all__ = ["DitmosError", "__version__"]
