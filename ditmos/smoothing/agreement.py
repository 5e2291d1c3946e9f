"""Where does the int8 model lose accuracy under noise?  (``ditmos certify --agreement``)

For ``samples`` windows and ``noises`` Gaussian draws ``e ~ N(0, sigma^2 I)`` per
window, the same draw is given to three classifiers:

- ``float``: the float model on ``x + e`` (what float smoothing evaluates);
- ``float on int8 input``: the float model on the dequantised noisy int8 input
  ``s (clamp(q + round(e / s), -128, 127) - z)`` (``q`` the quantised window);
  against ``float`` it isolates the input's quantisation step and saturation;
- ``int8``: the int8 model on ``clamp(q + round(e / s), -128, 127)`` (the
  rounded Gaussian that integer smoothing's table noise stands for), hard
  routing as on the device.

Reported: per-noise accuracy of each, the share of noisy windows on which
``int8`` agrees with ``float`` and with ``float on int8 input``, how often
the int8 selector routes like the float selector (on the same int8 input)
and the class agreement on the windows routed alike and on the others, and
the share of saturated input values.  Compare a run under noise with the
same run on clean windows (``--sigma`` tiny) to see what noise changes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ditmos.errors import DitmosError

COLUMNS = (
    ("acc_float", "float acc %"),
    ("acc_float_q", "float on int8 input acc %"),
    ("acc_int8", "int8 acc %"),
    ("agree_float", "int8 = float %"),
    ("agree_float_q", "int8 = float on int8 input %"),
    ("route_agree", "same route %"),
    ("agree_same_route", "int8 = float, same route %"),
    ("agree_other_route", "int8 = float, other route %"),
    ("saturated", "saturated inputs %"),
)


def agreement(
    run_dir, *, sigma: float, samples: int = 200, noises: int = 100, seed: int = 0, split: str = "test", batch=5000
) -> dict:
    """Float vs int8 predictions of ``run_dir``'s DiTMoS on the same noisy windows."""
    import tensorflow as tf

    from ditmos.quantize import qmath
    from ditmos.smoothing.batched import BatchedInt8Model
    from ditmos.smoothing.run import SPLITS, sample_indices
    from ditmos.smoothing.smoothers import FloatModel
    from ditmos.training.rundir import load_run_data

    if not sigma >= 0:
        raise DitmosError(f"--sigma must be >= 0 for --agreement, got {sigma}")
    if noises < 1:
        raise DitmosError(f"--noises must be >= 1, got {noises}")
    if split not in SPLITS:
        raise DitmosError(f"--split must be one of {', '.join(SPLITS)}, got {split!r}")
    run_dir = Path(run_dir)
    if not (run_dir / "int8").is_dir() or not (run_dir / "export" / "export.json").is_file():
        raise DitmosError(f"{run_dir}: --agreement needs a DiTMoS run with an int8 model (run 'ditmos quantize' first)")
    data = load_run_data(run_dir)
    xs, ys = (data.x_test, data.y_test) if split == "test" else (data.x_val, data.y_val)
    idx = sample_indices(len(ys), samples)
    x, y = xs[idx].astype(np.float32), ys[idx]
    fm = FloatModel(run_dir, batch=batch)
    im = BatchedInt8Model(run_dir / "int8")
    from ditmos.quantize.reference import load_manifest

    q = load_manifest(run_dir / "int8")["input_quant"]
    s, z = float(np.float32(q["scale"])), int(q["zero_point"])

    def float_route(xb):
        sel = fm.selector({"window": tf.constant(xb)}, training=False)
        return np.argmax(np.asarray(sel["route"]), 1)

    def int8_route(qb):
        sel = im.subs["selector"].run({"window": qb}, len(qb))
        return qmath.argmax_first(sel["route"].reshape(len(qb), im.K), axis=1)

    rng = np.random.default_rng([seed, 29])
    keys = ("acc_float", "acc_float_q", "acc_int8", "agree_float", "agree_float_q", "route_agree")
    tot = dict.fromkeys(keys, 0)
    same = [0, 0]  # noisy windows routed alike, of which classified alike
    other = [0, 0]
    sat, count = 0, 0
    per = max(1, batch // noises)  # windows per block: about `batch` noisy windows
    for j in range(0, len(y), per):
        xb, yb = x[j : j + per], np.repeat(y[j : j + per], noises)
        e = rng.standard_normal((len(xb), noises, *x.shape[1:]), dtype=np.float32) * np.float32(sigma)
        q0 = np.round(xb.astype(np.float64) / s) + z
        raw = (q0[:, None] + np.round(e.astype(np.float64) / s)).reshape(-1, *x.shape[1:])
        sat += int(np.count_nonzero((raw > 127) | (raw < -128)))
        count += raw.size
        qn = np.clip(raw, -128, 127).astype(np.int8)
        deq = (s * (qn.astype(np.float64) - z)).astype(np.float32)
        xf = (xb[:, None] + e).reshape(-1, *x.shape[1:])
        p_f, p_fq, p_i = fm.predict(xf), fm.predict(deq), im.predict(qn)
        r_f, r_i = float_route(deq), int8_route(qn)
        for k, hit in zip(keys, (p_f == yb, p_fq == yb, p_i == yb, p_f == p_i, p_fq == p_i, r_f == r_i)):
            tot[k] += int(np.sum(hit))
        m = r_f == r_i
        same[0] += int(m.sum())
        same[1] += int(np.sum(p_fq[m] == p_i[m]))
        other[0] += int((~m).sum())
        other[1] += int(np.sum(p_fq[~m] == p_i[~m]))
    total = len(y) * noises
    out = {k: 100.0 * v / total for k, v in tot.items()}
    out["agree_same_route"] = 100.0 * same[1] / same[0] if same[0] else float("nan")
    out["agree_other_route"] = 100.0 * other[1] / other[0] if other[0] else float("nan")
    out["saturated"] = 100.0 * sat / count
    return {
        "run": str(run_dir),
        "split": split,
        "sigma": float(sigma),
        "samples": int(len(y)),
        "noises": int(noises),
        "seed": int(seed),
        "input_scale": s,
        "input_zero_point": z,
        "sigma_steps": float(sigma) / s,
        "other_route_windows": other[0],
        **out,
    }


def format_table(results: list[dict]) -> str:
    head = ["run", "sigma"] + [c[1] for c in COLUMNS]
    lines = [" | ".join(head), " | ".join("---" for _ in head)]
    for r in results:
        lines.append(" | ".join([Path(r["run"]).name, f"{r['sigma']:g}"] + [f"{r[k]:.2f}" for k, _ in COLUMNS]))
    return "\n".join(lines)


def write_markdown(results: list[dict], path, command: str) -> None:
    import os

    r0 = results[0]
    lines = [
        "# Float vs int8 predictions under noise: " + ", ".join(f"`{Path(r['run']).name}`" for r in results),
        "",
        f"Written by `{command}` (docs/smoothing.md).  {r0['samples']} "
        f"{'validation' if r0['split'] == 'val' else 'test'} windows (evenly spread over the split) x "
        f"{r0['noises']} Gaussian draws each, noise seed {r0['seed']}; every draw goes to the float model "
        "(`float`), to the float model on the dequantised noisy int8 input (`float on int8 input`) and to "
        "the int8 model (hard routing); percentages of the noisy windows.  `same route`: the int8 "
        "selector picks the float selector's classifier (same int8 input); `saturated inputs`: noisy "
        "input values clamped to [-128, 127].",
        "",
    ]
    for r in results:
        lines.append(
            f"- {Path(r['run']).name}: input scale {r['input_scale']:.4f} (sigma {r['sigma']:g} = "
            f"{r['sigma_steps']:.2f} input steps), {r['other_route_windows']} noisy windows routed differently"
        )
    lines += ["", format_table(results), ""]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text("\n".join(lines))
    os.replace(tmp, path)
