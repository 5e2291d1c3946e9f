"""The frame parser and request handler under libFuzzer with AddressSanitizer
and UndefinedBehaviorSanitizer, for a bounded time, from a seed corpus of
valid frames.  (Checked once by hand: with the payload-length bound loosened
by 100 bytes and the buffer guard removed, this test reports the overflow
within seconds.)"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from ditmos.paths import firmware_dir
from firmware.frames import FIXTURE_MODEL, HELLO, INFER, RESET, STATS, encode, fixture_model

FUZZ_SECONDS = 25


def _build_fuzzer(tmp_path):
    clang = shutil.which("clang")
    if clang is None:
        pytest.fail("clang is not installed (scripts/setup.sh installs clang and libclang-rt-14-dev)")
    fw = firmware_dir()
    exe = tmp_path / "fuzz_frames"
    cmd = [
        clang,
        "-std=c99",
        "-g",
        "-O1",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-fsanitize=fuzzer,address,undefined",
        "-fno-sanitize-recover=all",
        f"-I{fw / 'include'}",
        f"-I{FIXTURE_MODEL}",
        str(fw / "runtime" / "ditmos_frame.c"),
        str(fw / "runtime" / "ditmos_protocol.c"),
        str(fw / "runtime" / "ditmos_certify.c"),
        str(fw / "runtime" / "ditmos_smooth.c"),
        str(fw / "runtime" / "ditmos_raw.c"),
        str(fw / "runtime" / "ditmos_smooth_model.c"),
        str(fw / "boards" / "host" / "board.c"),
        str(FIXTURE_MODEL / "model.c"),
        str(FIXTURE_MODEL / "weights.c"),
        str(FIXTURE_MODEL.parent.parent / "fuzz_frames.c"),
        "-o",
        str(exe),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return exe


@pytest.mark.slow
def test_fuzz_parser_and_handler(tmp_path):
    exe = _build_fuzzer(tmp_path)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    n = fixture_model().N
    seeds = [
        encode(HELLO, 1),
        encode(HELLO, 1) + encode(INFER, 2, bytes(range(n))),
        encode(STATS, 3) + encode(STATS, 3) + encode(STATS, 9),
        encode(INFER, 4, bytes(n - 1)),
        encode(RESET, 5) + encode(HELLO, 0),
        encode(STATS, 1, version=3),
        encode(INFER, 1, b"", length=3000)[:8],
        encode(STATS, 1, bad_crc=True),
        b"\xa5\xa5\x5a" + encode(HELLO, 2)[2:],
        # a frame of the maximum size, so mutated lengths reach the buffer's end
        encode(INFER, 6, bytes(2048)),
    ]
    for i, s in enumerate(seeds):
        (corpus / f"seed{i}").write_bytes(s)
    proc = subprocess.run(
        [
            str(exe),
            str(corpus),
            f"-max_total_time={FUZZ_SECONDS}",
            "-max_len=4200",
            "-len_control=0",
            "-rss_limit_mb=2048",
            "-timeout=10",
            "-print_final_stats=1",
        ],
        capture_output=True,
        text=True,
        timeout=FUZZ_SECONDS + 120,
        cwd=tmp_path,
    )
    log = proc.stderr[-3000:]
    assert proc.returncode == 0, log
    assert "ERROR: AddressSanitizer" not in proc.stderr
    assert "runtime error" not in proc.stderr
    assert "Done" in proc.stderr and "stat::number_of_executed_units" in proc.stderr, log
    runs = int(proc.stderr.split("stat::number_of_executed_units:")[1].split()[0])
    assert runs > 10_000, log
