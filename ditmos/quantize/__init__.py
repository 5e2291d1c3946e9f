"""ditmos.quantize: trained run -> full-int8 TFLite, and the host reference.

``quantize_run`` (heavy: imports TensorFlow) and ``ComposedReference`` are
imported lazily so that ``ditmos.quantize.qmath`` stays light.
"""

from __future__ import annotations

__all__ = ["quantize_run", "ComposedReference"]


def __getattr__(name):
    if name == "quantize_run":
        from ditmos.quantize.run import quantize_run

        return quantize_run
    if name == "ComposedReference":
        from ditmos.quantize.reference import ComposedReference

        return ComposedReference
    raise AttributeError(f"module 'ditmos.quantize' has no attribute {name!r}")
