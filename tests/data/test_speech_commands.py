"""Speech Commands v2 loader on WAV folders written in the published layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile

from datafixtures import SC_SPEAKERS, SC_WORDS, tone, write_speech_commands
from ditmos.data import load_dataset, make_splits
from ditmos.data.mfcc import fit_clip, mfcc
from ditmos.errors import DitmosError


def test_twelve_class_benchmark(speech_dir):
    ds = load_dataset(f"speech_commands:{speech_dir}")
    assert ds.class_names == [
        "yes",
        "no",
        "up",
        "down",
        "left",
        "right",
        "on",
        "off",
        "stop",
        "go",
        "_silence_",
        "_unknown_",
    ]
    assert ds.X.shape[1:] == (49, 13)
    counts = np.bincount(ds.y)
    assert counts[:10].tolist() == [6] * 10  # 3 speakers x 2 clips
    assert counts[11] == 12  # bed + cat
    assert counts[10] == 20 == ds.info["silence_clips"]  # 2 noise files x 10 s
    assert ds.info["clips_padded"] == 36
    # the published split, honoured exactly; words by speaker, silence by position in each file
    s = make_splits(ds, 0)
    speakers = {int(h, 16) for h in SC_SPEAKERS}
    assert set(ds.groups[s.val]) - {-1, -2} == {int(SC_SPEAKERS[1], 16)}
    assert set(ds.groups[s.test]) - {-1, -2} == {int(SC_SPEAKERS[2], 16)}
    assert set(ds.groups[ds.y != 10]) == speakers
    silence = ds.split[ds.y == 10]
    assert (silence == "train").sum() == 16 and (silence == "val").sum() == 2 and (silence == "test").sum() == 2
    assert s.sizes() == {"train": 24 + 16, "val": 24 + 2, "test": 24 + 2}


def test_features_are_the_mfcc_of_the_clip(speech_dir):
    ds = load_dataset(f"speech_commands:{speech_dir}")
    rate, audio = wavfile.read(speech_dir / "up" / f"{SC_SPEAKERS[1]}_nohash_1.wav")
    expected = mfcc(fit_clip(audio / 32768.0))
    matches = [i for i in range(len(ds)) if np.array_equal(ds.X[i], expected)]
    assert len(matches) == 1
    assert ds.y[matches[0]] == 2 and ds.split[matches[0]] == "val"


def test_all_words_mode_and_cache(speech_dir, tmp_path):
    ds = load_dataset(f"speech_commands35:{speech_dir}")
    assert ds.class_names == sorted(SC_WORDS)
    assert len(ds) == 72 and ds.info["silence_clips"] == 0
    cache = ds.info["cache"]
    assert str(tmp_path / "cache") in cache
    assert Path(cache).is_file()
    again = load_dataset(f"speech_commands35:{speech_dir}")
    assert np.array_equal(again.X, ds.X) and np.array_equal(again.split, ds.split)
    # changing a clip changes the key, so the features are recomputed
    wavfile.write(speech_dir / "bed" / f"{SC_SPEAKERS[0]}_nohash_0.wav", 16000, tone(3000, 0.5))
    changed = load_dataset(f"speech_commands35:{speech_dir}")
    assert changed.info["cache"] != cache and not np.array_equal(changed.X, ds.X)


def test_missing_folder(tmp_path):
    with pytest.raises(DitmosError, match="Speech Commands folder not found"):
        load_dataset(f"speech_commands:{tmp_path / 'sc'}")


def test_missing_list(speech_dir):
    (speech_dir / "testing_list.txt").unlink()
    with pytest.raises(DitmosError, match=r"testing_list.txt: split list not found"):
        load_dataset(f"speech_commands:{speech_dir}")


def test_listed_clip_missing(speech_dir):
    with open(speech_dir / "validation_list.txt", "a") as fh:
        fh.write("yes/deadbeef_nohash_0.wav\n")
    with pytest.raises(
        DitmosError,
        match=r"validation_list.txt: 1 listed clip\(s\) do not exist "
        r"\(first: yes/deadbeef_nohash_0.wav\)",
    ):
        load_dataset(f"speech_commands:{speech_dir}")


def test_wrong_sample_rate(speech_dir):
    bad = speech_dir / "go" / f"{SC_SPEAKERS[0]}_nohash_0.wav"
    wavfile.write(bad, 8000, tone(300, 1.0, rate=8000))
    with pytest.raises(DitmosError, match=r"go/0a7c2a8d_nohash_0.wav: sample rate 8000 Hz, expected 16000 Hz"):
        load_dataset(f"speech_commands:{speech_dir}")


def test_stereo(speech_dir):
    bad = speech_dir / "go" / f"{SC_SPEAKERS[0]}_nohash_0.wav"
    wavfile.write(bad, 16000, np.stack([tone(300, 1.0)] * 2, axis=1))
    with pytest.raises(DitmosError, match=r"nohash_0.wav: 2 channels, expected mono"):
        load_dataset(f"speech_commands:{speech_dir}")


def test_not_a_wav(speech_dir):
    (speech_dir / "on" / f"{SC_SPEAKERS[0]}_nohash_0.wav").write_bytes(b"RIFF....nonsense")
    with pytest.raises(DitmosError, match=r"on/0a7c2a8d_nohash_0.wav: not a readable WAV file"):
        load_dataset(f"speech_commands:{speech_dir}")


def test_bad_file_name(speech_dir):
    wavfile.write(speech_dir / "on" / "recording.wav", 16000, tone(300, 1.0))
    with pytest.raises(DitmosError, match=r"on/recording.wav: file name is not <speaker>_nohash_<n>.wav"):
        load_dataset(f"speech_commands:{speech_dir}")


def test_twelve_class_needs_the_ten_words(tmp_path):
    root = write_speech_commands(tmp_path, words=["yes", "no", "bed"])
    with pytest.raises(DitmosError, match=r"word folder\(s\) \['up', 'down'"):
        load_dataset(f"speech_commands:{root}")
    assert load_dataset(f"speech_commands35:{root}").class_names == ["bed", "no", "yes"]


def test_twelve_class_needs_background_noise(speech_dir):
    for f in (speech_dir / "_background_noise_").glob("*.wav"):
        f.unlink()
    with pytest.raises(DitmosError, match=r"_background_noise_: no background-noise WAVs"):
        load_dataset(f"speech_commands:{speech_dir}")
