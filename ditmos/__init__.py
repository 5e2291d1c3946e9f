"""ditmos: DiTMoS (Diverse Tiny-Model Selection) from training to firmware."""

import os as _os

__version__ = "0.1.0"

# Training runs the K classifiers as one grouped convolution.  TensorFlow's CPU
# kernels only have gradients for grouped convolutions through oneDNN, which it
# switches on by default only on CPUs with AVX-512; ask for it everywhere
# (before TensorFlow is imported; a user's explicit setting wins).
_os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

from ditmos.errors import DitmosError

__all__ = ["DitmosError", "__version__"]
