"""Robustness of the int8 model that ships.

Two figures: the int8 TFLM reference classifying the float model's
adversarial windows (transfer), and the gradient-free Square attack run
directly on the int8 reference (its integer scores as the margin), which
needs no gradient of the quantised network and so cannot be fooled by the
zero gradients of rounding.
"""

from __future__ import annotations

import numpy as np

from ditmos.robust.attacks import NORMS, square_linf


def _input_clip(ref) -> tuple[float, float]:
    """The float range the int8 input quantisation represents."""
    s, z = float(ref.input_scale), int(ref.input_zero_point)
    return ((-128 - z) * s, (127 - z) * s)


def int8_robustness(int8_dir, x: np.ndarray, y: np.ndarray, advs: dict[str, np.ndarray],
                    radii: dict[str, float], *, queries: int = 300, seed: int = 0,
                    square_samples: int = 200) -> dict:
    from ditmos.quantize.reference import ComposedReference

    ref = ComposedReference(int8_dir)
    y = np.asarray(y, np.int64)

    def predict(v):
        return ref.predict(ref.quantize_input(np.clip(v, *_input_clip(ref))))[0]

    clean_ok = predict(x) == y
    robust, ok_all = {}, clean_ok.copy()
    for norm in NORMS:
        ok = clean_ok & (predict(advs[norm]) == y)
        robust[norm] = float(np.mean(ok))
        ok_all &= ok
    out = {"interpreter": "tflm",
           "transfer": {"n": int(len(x)), "clean": float(np.mean(clean_ok)), "robust": robust,
                        "union": float(np.mean(ok_all))}}
    if queries > 0 and radii.get("linf", 0) > 0:
        n = min(square_samples, len(x))

        def scores(v):
            return ref.predict(ref.quantize_input(v))[2].astype(np.float64)

        adv = square_linf(scores, x[:n], y[:n], eps=float(radii["linf"]), queries=queries,
                          seed=seed + 13, clip=_input_clip(ref))
        ok = (predict(x[:n]) == y[:n]) & (predict(adv) == y[:n])
        out["square"] = {"n": int(n), "clean": float(np.mean(clean_ok[:n])),
                         "robust": {"linf": float(np.mean(ok))}, "union": None}
    return out
