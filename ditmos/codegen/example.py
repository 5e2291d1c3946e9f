"""The example application written next to a build: ``example/main.c`` (a
stub sensor the user replaces, a stream, a print per classification), a
``Makefile`` that builds the generated model as the static library
``libditmos_model.a`` and links ``main.c`` against it, and a README."""

from __future__ import annotations

import json
from pathlib import Path

from ditmos import __version__
from ditmos.errors import DitmosError

FILES = ("main.c", "Makefile", "README.md")


def write_example(dest, model_dir, *, prefix: str = "ditmos", hop: int | None = None) -> Path:
    """Write the example into ``dest`` for the generated model in ``model_dir``
    (its manifest.json); ``hop`` defaults to half a window."""
    from ditmos.codegen.render import _env

    model_dir, dest = Path(model_dir), Path(dest)
    try:
        man = json.loads((model_dir / "manifest.json").read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise DitmosError(f"{model_dir / 'manifest.json'}: cannot read the generated model ({err})") from None
    if not (model_dir / "prepare.h").is_file():
        raise DitmosError(f"{model_dir}: no prepare.h (the int8 manifest has no normalisation)")
    T, C = (int(v) for v in man["input_shape"])
    hop = max(T // 2, 1) if hop is None else int(hop)
    if hop < 1:
        raise DitmosError(f"the example's hop must be at least 1, got {hop}")
    ctx = dict(
        version=__version__,
        model_hash=man["model_hash"][:16],
        T=T,
        C=C,
        hop=hop,
        prefix=prefix,
        PREFIX=prefix.upper(),
        num_classes=int(man["num_classes"]),
        raw_i16="HAS_RAW_I16" in (model_dir / "prepare.h").read_text(),
        audio="_AUDIO_SAMPLES" in (model_dir / "prepare.h").read_text(),
    )
    env = _env()
    dest.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        (dest / name).write_text(env.get_template(f"example/{name}.j2").render(**ctx))
    return dest
