"""ditmos: DiTMoS (Diverse Tiny-Model Selection) from training to firmware."""

__version__ = "0.1.0"

from ditmos.errors import DitmosError

__all__ = ["DitmosError", "__version__"]
