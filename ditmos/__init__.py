"""ditmos: DiTMoS (Diverse Tiny-Model Selection) from training to firmware."""

__version__ = "0.1.0"

from ditmos import tfenv as _tfenv

_tfenv.configure()  # before anything imports TensorFlow

from ditmos.errors import DitmosError  # noqa: E402

__all__ = ["DitmosError", "__version__"]
