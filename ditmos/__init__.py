"""ditmos: DiTMoS (Diverse Tiny-Model Selection) from training to firmware."""

__version__ = "0.1.0"

import os as _os

# The K-classifier bank trains as one grouped convolution. TensorFlow's own CPU
# kernels have no gradient for grouped convolutions; its oneDNN kernels do.
# oneDNN is on by default only on some x86 CPUs (e.g. those with AVX-512), so
# turn it on explicitly, before TensorFlow is first imported.
_os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

from ditmos.errors import DitmosError

__all__ = ["DitmosError", "__version__"]
