"""The fixed-point MFCC front end: the C (firmware/frontend/ditmos_mfcc.c, built
with the host gcc) computes the same int32 values as the Python reference
(ditmos.data.mfcc_fixed) byte for byte, on real recordings and on edge cases
(full-scale square waves, white noise, impulses, silence); and it stays close
to the float MFCC it approximates."""

from __future__ import annotations

import ctypes as C
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from ditmos.data.fsdd_audio import CONFIG, fit_clips, load_clips
from ditmos.data.mfcc import mfcc
from ditmos.data.mfcc_fixed import FixedMfccConfig, c_tables, mfcc_fixed, to_float_units

REPO = Path(__file__).resolve().parents[2]
FRONTEND = REPO / "firmware" / "frontend"
CFLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-O2"]

WRAPPER = """
#include <stdint.h>
#include "ditmos_mfcc.h"
{tables}
void run_clips(const int16_t *clips, int32_t n_clips, int32_t clip_samples, int32_t num_frames,
               int32_t *out) {{
    static int64_t scratch64[DITMOS_MFCC_SCRATCH_WORDS({n_fft}, {n_mels}) / 2 + 1];
    for (int32_t i = 0; i < n_clips; ++i) {{
        ditmos_mfcc_clip(&test_params, clips + i * clip_samples, num_frames, (int32_t *)scratch64,
                         out + i * num_frames * {n_coeffs});
    }}
}}
"""


def build_frontend(cfg: FixedMfccConfig, out_dir: Path, extra_flags: tuple[str, ...] = ()):
    src = out_dir / "wrapper.c"
    src.write_text(
        WRAPPER.format(tables=c_tables(cfg, "test"), n_fft=cfg.n_fft, n_mels=cfg.n_mels, n_coeffs=cfg.n_coeffs)
    )
    lib = out_dir / "libmfcc.so"
    r = subprocess.run(
        [
            "gcc",
            *CFLAGS,
            *extra_flags,
            "-fPIC",
            "-shared",
            f"-I{FRONTEND}",
            str(src),
            str(FRONTEND / "ditmos_mfcc.c"),
            "-o",
            str(lib),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    so = C.CDLL(str(lib))

    def run(clips: np.ndarray) -> np.ndarray:
        clips = np.ascontiguousarray(clips, dtype=np.int16)
        out = np.zeros((len(clips), cfg.num_frames, cfg.n_coeffs), dtype=np.int32)
        so.run_clips(
            clips.ctypes.data_as(C.POINTER(C.c_int16)),
            C.c_int32(len(clips)),
            C.c_int32(cfg.clip_samples),
            C.c_int32(cfg.num_frames),
            out.ctypes.data_as(C.POINTER(C.c_int32)),
        )
        return out

    return run


def edge_clips(cfg: FixedMfccConfig, rng: np.random.Generator) -> np.ndarray:
    n = cfg.clip_samples
    t = np.arange(n)
    clips = [
        np.zeros(n),
        np.full(n, 32767),
        np.full(n, -32768),
        np.where((t // 2) % 2 == 0, 32767, -32768),  # Nyquist-ish square
        np.where((t // 37) % 2 == 0, 32767, -32768),  # low square, many harmonics
        rng.integers(-32768, 32768, n),  # full-scale white noise
        np.round(32767 * np.sin(2 * np.pi * 1000 * t / cfg.sample_rate)),
        np.round(32767 * np.sin(2 * np.pi * 3999 * t / cfg.sample_rate)),
    ]
    impulse = np.zeros(n)
    impulse[::97] = -32768
    clips.append(impulse)
    clips.append(rng.integers(-3, 4, n))  # near silence
    return np.stack(clips).astype(np.int16)


@pytest.fixture(scope="module")
def recordings():
    _, a = load_clips()
    return fit_clips(a["audio"], a["lengths"], CONFIG.clip_samples)


@pytest.fixture(scope="module")
def c_mfcc(tmp_path_factory):
    return build_frontend(CONFIG, tmp_path_factory.mktemp("mfcc"))


def test_c_equals_python_on_recordings(c_mfcc, recordings):
    clips = recordings[::6]  # 500 clips: every speaker and digit
    assert len(clips) == 500
    ref = mfcc_fixed(clips, CONFIG)
    got = c_mfcc(clips)
    assert got.tobytes() == ref.tobytes(), f"{np.sum(got != ref)} values differ"


def test_c_equals_python_on_edge_cases(c_mfcc):
    clips = edge_clips(CONFIG, np.random.default_rng(0))
    ref = mfcc_fixed(clips, CONFIG)
    assert c_mfcc(clips).tobytes() == ref.tobytes()


def test_other_parameters_also_match(tmp_path):
    """Other parameters, and the C without compiler builtins (the portable
    highest-set-bit search instead of CLZ)."""
    cfg = FixedMfccConfig(
        sample_rate=16000,
        clip_samples=4000,
        frame_length=400,
        hop_length=160,
        n_fft=512,
        n_mels=40,
        f_min=20.0,
        f_max=7600.0,
        n_coeffs=10,
    )
    clips = edge_clips(cfg, np.random.default_rng(1))
    ref = mfcc_fixed(clips, cfg).tobytes()
    assert build_frontend(cfg, tmp_path)(clips).tobytes() == ref
    portable = tmp_path / "portable"
    portable.mkdir()
    assert build_frontend(cfg, portable, ("-DDITMOS_MFCC_NO_BUILTINS",))(clips).tobytes() == ref


def test_fixed_point_tracks_the_float_front_end(recordings):
    clips = recordings[:40]
    fixed = to_float_units(mfcc_fixed(clips, CONFIG), CONFIG)
    ref = mfcc(clips / 32768.0, CONFIG.float_config())
    diff = fixed - ref
    # every frame, also the silent ones (zero padding, faint noise): the mel floor
    # is the float front end's log floor
    silent = ref[..., 0] < -70.0
    assert silent.sum() > 500 and (~silent).sum() > 500
    for part in (diff[silent], diff[~silent]):
        assert np.max(np.abs(part[:, 0])) < 0.2
        assert np.mean(np.abs(part[:, 0])) < 0.03
        assert np.mean(np.abs(part[:, 1:])) < 0.01


def test_without_the_floor_silence_falls_far_below_the_float_front_end():
    """The bug the mel floor fixes: M + 1 puts digital silence 17 nats per band
    under the float front end's clamp."""
    cfg = FixedMfccConfig(log_floor=0.0)
    assert cfg.mel_floor == 1 and CONFIG.mel_floor == round(1e-6 * 2**45)
    silence = np.zeros(CONFIG.clip_samples, dtype=np.int16)
    per_band = np.sqrt(CONFIG.n_mels)
    no_floor = to_float_units(mfcc_fixed(silence, cfg), cfg)[:, 0] / per_band
    floored = to_float_units(mfcc_fixed(silence, CONFIG), CONFIG)[:, 0] / per_band
    ref = mfcc(silence / 32768.0, CONFIG.float_config())[:, 0] / per_band
    assert np.all(np.abs(floored - ref) < 0.01)
    assert np.all(ref - no_floor > 17.0)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="int16"):
        mfcc_fixed(np.zeros(CONFIG.clip_samples, dtype=np.float32))
    with pytest.raises(ValueError, match="8000 samples"):
        mfcc_fixed(np.zeros(100, dtype=np.int16))
    with pytest.raises(ValueError, match="power of two"):
        FixedMfccConfig(n_fft=250)
    with pytest.raises(ValueError, match="log_floor"):
        FixedMfccConfig(log_floor=-1.0)


def _fnv(data: bytes) -> str:
    h = 2166136261
    for b in data:
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return f"{h:08x}"


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
    reason="arm-none-eabi-gcc and qemu-system-arm are installed by scripts/setup.sh",
)
def test_cortex_m7_equals_python_and_counts_instructions(recordings, tmp_path):
    """The same C on the M7 ISA (QEMU mps2-an500): identical bytes for 8 clips;
    prints the instructions of one 1 s window (49 frames) with the plugin."""
    import sys

    sys.path.insert(0, str(REPO / "tests" / "kernels"))
    from kernel_lib import M7_ARCH, M7_DIR, build_count_plugin, run_qemu_m7

    clips = recordings[::375][:8]
    (tmp_path / "clips.c").write_text(
        '#include <stdint.h>\n#include "ditmos_mfcc.h"\n'
        + c_tables(CONFIG, "test")
        + f"const int32_t test_num_clips = {len(clips)}, test_clip_samples = {CONFIG.clip_samples}, "
        f"test_num_frames = {CONFIG.num_frames};\n"
        + "const int16_t test_clips[] = {"
        + ",".join(map(str, clips.reshape(-1)))
        + "};\n"
    )
    elf = tmp_path / "mfcc.elf"
    cmd = [
        "arm-none-eabi-gcc",
        *CFLAGS,
        *M7_ARCH,
        f"-I{FRONTEND}",
        f"-I{M7_DIR}",
        str(FRONTEND / "ditmos_mfcc.c"),
        str(tmp_path / "clips.c"),
        str(REPO / "tests" / "frontend" / "m7_mfcc.c"),
        str(M7_DIR / "startup.c"),
        "-nostartfiles",
        "--specs=nano.specs",
        "--specs=nosys.specs",
        "-T",
        str(M7_DIR / "mps2_an500.ld"),
        "-o",
        str(elf),
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    plugin = build_count_plugin(tmp_path)
    code, text, marks = run_qemu_m7(elf, plugin, tmp_path / "counts.txt")
    assert code == 0, text
    assert f"mfcc hash={_fnv(mfcc_fixed(clips, CONFIG).tobytes())}" in text, text
    assert len(marks) == 2
    insns = marks[1] - marks[0]
    print(
        f"\nMFCC front end on Cortex-M7: {insns} instructions per {CONFIG.num_frames}-frame window "
        f"({insns // CONFIG.num_frames} per frame)"
    )
    assert 0 < insns < 20_000_000
