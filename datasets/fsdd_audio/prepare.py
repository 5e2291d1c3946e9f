"""Rebuild datasets/fsdd_audio/fsdd_audio.npz from the FSDD recordings.

Usage (from the repository root; needs only numpy):

    .venv/bin/python datasets/fsdd_audio/prepare.py RECORDINGS_DIR [--out FILE]

RECORDINGS_DIR is the ``recordings/`` folder of the Free Spoken Digit Dataset
repository (``Jakobovski/free-spoken-digit-dataset`` on GitHub, commit
``26eb9aa``): 3000 WAV files ``{digit}_{speaker}_{index}.wav``, mono 16-bit
PCM at 8 kHz.  Every file is checked (format, name, 50 clips per digit and
speaker) and its samples are copied unchanged.  The archive is written with
fixed member order, timestamps and compression level, so the same recordings
always give the same bytes (sha256 in README.md).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import re
import sys
import wave
import zipfile
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent / "fsdd_audio.npz"
SAMPLE_RATE_HZ = 8000
NAME = re.compile(r"^([0-9])_([a-z]+)_([0-9]+)\.wav$")


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as w:
        if (w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getcomptype()) != (1, 2, SAMPLE_RATE_HZ, "NONE"):
            raise SystemExit(f"{path}: expected mono 16-bit PCM at {SAMPLE_RATE_HZ} Hz")
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.int16)


def read_recordings(folder: Path) -> dict[str, np.ndarray]:
    files = sorted(p.name for p in folder.glob("*.wav"))
    parsed = [NAME.match(f) for f in files]
    bad = [f for f, m in zip(files, parsed) if m is None]
    if bad:
        raise SystemExit(f"{folder}: unexpected file names, e.g. {bad[0]}")
    if len(files) != 3000:
        raise SystemExit(f"{folder}: expected 3000 recordings, found {len(files)}")
    speakers = sorted({m.group(2) for m in parsed})
    clips = [read_wav(folder / f) for f in files]
    label = np.array([int(m.group(1)) for m in parsed], dtype=np.int8)
    speaker = np.array([speakers.index(m.group(2)) for m in parsed], dtype=np.int8)
    counts = np.bincount(label.astype(np.int64) * len(speakers) + speaker, minlength=10 * len(speakers))
    if not np.all(counts == 50):
        raise SystemExit(f"{folder}: expected 50 clips per digit and speaker")
    return {
        "audio": np.concatenate(clips),
        "lengths": np.array([len(c) for c in clips], dtype=np.int32),
        "label": label,
        "speaker": speaker,
        "speaker_names": np.array(speakers),
        "index": np.array([int(m.group(3)) for m in parsed], dtype=np.int16),
        "sample_rate_hz": np.array(SAMPLE_RATE_HZ, dtype=np.int32),
    }


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """A numpy-readable .npz whose bytes depend only on the arrays."""
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w") as zf:
        for name, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.require(arr, requirements="C"), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue(), compresslevel=9)
    os.replace(tmp, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("recordings", type=Path, help="the FSDD repository's recordings/ folder")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    if not args.recordings.is_dir():
        sys.exit(f"{args.recordings}: not a folder")
    arrays = read_recordings(args.recordings)
    write_npz(args.out, arrays)
    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()
    print(
        f"wrote {args.out} ({args.out.stat().st_size} bytes, sha256 {digest}): "
        f"{len(arrays['label'])} clips, {len(arrays['audio'])} samples"
    )


if __name__ == "__main__":
    main()
