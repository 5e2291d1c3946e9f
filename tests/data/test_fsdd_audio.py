"""The shipped raw-audio dataset fsdd_audio: counts, speaker-disjoint split,
features from the fixed-point front end, and a byte-identical rebuild."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import wave

import numpy as np
import pytest

from ditmos.data import load_dataset, make_splits
from ditmos.data.fsdd_audio import CONFIG, fit_clips, load_clips
from ditmos.data.mfcc_fixed import mfcc_fixed
from ditmos.paths import datasets_dir

SHA256 = "f3822f50866c68c06a910b63c7f33e98ddd8672166cae446f8288b584ab93714"


@pytest.fixture(scope="module")
def ds():
    return load_dataset("fsdd_audio")


def test_counts_shapes_and_provenance(ds):
    assert ds.X.shape == (3000, 49, 13) and ds.X.dtype == np.float32
    assert np.bincount(ds.y).tolist() == [300] * 10
    assert np.bincount(ds.groups).tolist() == [500] * 6
    assert ds.info["clips_cut"] == 20 and ds.info["clips_padded"] == 2980
    assert "CC BY-SA 4.0" in ds.info["licence"]
    assert (datasets_dir() / "fsdd_audio" / "LICENSE").is_file()


def test_split_is_by_speaker(ds):
    s = make_splits(ds, 0)
    parts = [set(ds.groups[getattr(s, k)]) for k in ("train", "val", "test")]
    assert parts[0].isdisjoint(parts[1]) and parts[0].isdisjoint(parts[2]) and parts[1].isdisjoint(parts[2])
    assert len(parts[2]) == 1 and len(parts[0]) == 4


def test_features_are_the_fixed_point_front_end(ds):
    _, a = load_clips()
    clips = fit_clips(a["audio"], a["lengths"], CONFIG.clip_samples)
    pick = [0, 1234, 2999]
    expect = mfcc_fixed(clips[pick], CONFIG).astype(np.float32) / 1024
    assert np.array_equal(ds.X[pick], expect)
    # the clip of the longest recording is its first second
    i = int(np.argmax(a["lengths"]))
    start = int(np.sum(a["lengths"][:i]))
    assert np.array_equal(clips[i], a["audio"][start : start + CONFIG.clip_samples])


@pytest.mark.slow
def test_prepare_rebuilds_the_shipped_file_byte_for_byte(tmp_path):
    """Write the recordings back as WAV files, rebuild, compare bytes."""
    shipped = datasets_dir() / "fsdd_audio" / "fsdd_audio.npz"
    assert hashlib.sha256(shipped.read_bytes()).hexdigest() == SHA256
    _, a = load_clips()
    rec = tmp_path / "recordings"
    rec.mkdir()
    pos = 0
    for n, d, s, k in zip(a["lengths"], a["label"], a["speaker"], a["index"]):
        with wave.open(str(rec / f"{d}_{a['speaker_names'][s]}_{k}.wav"), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(8000)
            w.writeframes(a["audio"][pos : pos + n].astype("<i2").tobytes())
        pos += int(n)
    out = tmp_path / "rebuilt.npz"
    subprocess.run(
        [sys.executable, str(datasets_dir() / "fsdd_audio" / "prepare.py"), str(rec), "--out", str(out)],
        check=True,
        capture_output=True,
    )
    assert out.read_bytes() == shipped.read_bytes()
