"""Robustness of the int8 model that ships.

Two figures: the int8 TFLM reference classifying the float model's
adversarial windows (transfer), and the gradient-free Square attack run
directly on the int8 reference (its integer scores as the margin), which
needs no gradient of the quantised network and so cannot be fooled by the
zero gradients of rounding.

Any int8 directory: DiTMoS (route = the classifier chosen) or a network (a
single CNN, or a multi-exit CNN whose route is the exit its integer
confidence test takes, exactly as on the device).  For a multi-exit network
the Square attack's margin is the integer logits of the exit the int8
policy takes on each query (an attack through the policy), and the exits
taken clean, on the transferred windows and on Square's windows are
reported with their average MACs when ``exit_macs`` is given.
"""

from __future__ import annotations

import numpy as np

from ditmos.robust.attacks import NORMS, square_linf


def _input_clip(ref) -> tuple[float, float]:
    """The float range the int8 input quantisation represents."""
    s, z = float(ref.input_scale), int(ref.input_zero_point)
    return ((-128 - z) * s, (127 - z) * s)


def _exits(routes: np.ndarray, exit_macs) -> dict:
    macs = np.asarray(exit_macs, np.float64)
    return {
        "avg_macs": round(float(macs[routes].mean()), 1),
        "exit_fractions": [round(float(f), 4) for f in np.bincount(routes, minlength=len(macs)) / max(len(routes), 1)],
    }


def int8_robustness(
    int8_dir,
    x: np.ndarray,
    y: np.ndarray,
    advs: dict[str, np.ndarray],
    radii: dict[str, float],
    *,
    queries: int = 300,
    seed: int = 0,
    square_samples: int = 200,
    exit_macs=None,
) -> dict:
    from ditmos.quantize.reference import reference_for

    ref = reference_for(int8_dir)
    y = np.asarray(y, np.int64)

    def run(v):
        pred, route, _ = ref.predict(ref.quantize_input(np.clip(v, *_input_clip(ref))))
        return pred, route

    clean_pred, clean_route = run(x)
    clean_ok = clean_pred == y
    robust, ok_all, routes = {}, clean_ok.copy(), {}
    for norm in NORMS:
        pred, routes[norm] = run(advs[norm])
        ok = clean_ok & (pred == y)
        robust[norm] = float(np.mean(ok))
        ok_all &= ok
    out = {
        "interpreter": "tflm",
        "transfer": {
            "n": int(len(x)),
            "clean": float(np.mean(clean_ok)),
            "robust": robust,
            "union": float(np.mean(ok_all)),
        },
    }
    if exit_macs is not None:
        out["exits"] = {
            "clean": _exits(clean_route, exit_macs),
            "transfer": {n: _exits(r, exit_macs) for n, r in routes.items()},
        }
    if queries > 0 and radii.get("linf", 0) > 0:
        n = min(square_samples, len(x))

        def scores(v):
            return ref.predict(ref.quantize_input(v))[2].astype(np.float64)

        adv = square_linf(
            scores, x[:n], y[:n], eps=float(radii["linf"]), queries=queries, seed=seed + 13, clip=_input_clip(ref)
        )
        pred, route = run(adv)
        ok = clean_ok[:n] & (pred == y[:n])
        out["square"] = {
            "n": int(n),
            "clean": float(np.mean(clean_ok[:n])),
            "robust": {"linf": float(np.mean(ok))},
            "union": None,
        }
        if exit_macs is not None:
            out["exits"]["square"] = {"linf": _exits(route, exit_macs)}
    return out
