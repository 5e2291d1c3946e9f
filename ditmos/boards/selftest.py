"""``ditmos selftest``: is the attached board running our firmware, correctly?

Checks, in order (each prints PASS / FAIL / SKIP and, on failure, what to do):

1. link: HELLO answers (protocol version, board, model of the build);
2. clock: the clock bring-up status is 0 and the core clock is the build's;
3. known answer: a few inputs (manifest.json ``known_answers``) give exactly
   the answers the host computed with the reference kernels at build time;
4. stack: the painted stack was never close to full;
5. timing: the cycle counter, read in two HELLOs some seconds apart, advanced
   at the stated clock within 5 % of the host's wall clock (latencies in
   cycles are converted to time with that clock).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ditmos.errors import DitmosError

TIMING_TOLERANCE = 0.05
STACK_MARGIN = 256  # bytes that must stay unused


@dataclass
class Check:
    name: str
    verdict: str  # PASS, FAIL, SKIP
    detail: str
    fix: str = ""


class SelfTest:
    def __init__(self, client, manifest: dict, *, seconds: float = 2.0, echo: Callable[[str], None] = print) -> None:
        self.client, self.manifest, self.seconds, self.echo = client, manifest, seconds, echo
        self.checks: list[Check] = []

    def _add(self, name, verdict, detail, fix="") -> Check:
        c = Check(name, verdict, detail, fix)
        self.checks.append(c)
        self.echo(f"{verdict:<4}  {name:<12} {detail}")
        if fix:
            self.echo(f"      {'':<12} fix: {fix}")
        return c

    def run(self) -> list[Check]:
        from ditmos.harness.client import DeviceTimeout

        try:
            info = self.client.hello()
        except DeviceTimeout:
            baud = self.manifest.get("baud")
            self._add(
                "link",
                "FAIL",
                f"no answer to HELLO on {self.client.url}",
                f"check that the board is flashed (`ditmos flash`), that the baud rate is "
                f"the firmware's ({baud}; `--baud`), that no serial monitor holds the "
                "port, and press the board's black RESET button",
            )
            return self.checks
        if not self._link(info):
            return self.checks
        self._clock(info)
        self._known_answer()
        self._stack()
        self._timing(info)
        return self.checks

    def _link(self, info) -> bool:
        m = self.manifest
        want_hash = str(m.get("model_hash", ""))[:16]
        if info.board_name != m.get("board"):
            self._add(
                "link",
                "FAIL",
                f"the device is a {info.board_name} board, the build is for {m.get('board')}",
                "give the build directory of this board (`--build`)",
            )
            return False
        if info.model_hash != want_hash:
            self._add(
                "link",
                "FAIL",
                f"the device runs model {info.model_hash}, the build holds {want_hash}",
                "flash this build: `ditmos flash --build BUILD_DIR`",
            )
            return False
        self._add(
            "link",
            "PASS",
            f"{info.board_name} answers HELLO (protocol "
            f"{info.protocol_version}, model {info.model_hash}, boot "
            f"{info.boot_counter})",
        )
        return True

    def _clock(self, info) -> None:
        want = self.manifest.get("core_clock_hz") or 0
        if info.clock_status is None:
            self._add(
                "clock",
                "FAIL",
                f"{info.clock_text}",
                "rebuild and flash with this ditmos (`ditmos build`, `ditmos flash`)",
            )
        elif info.clock_status != 0:
            self._add(
                "clock",
                "FAIL",
                info.clock_text,
                "the board fell back to a slower clock, so every latency is off; check "
                "that the ST-LINK part of the board is attached and powered (it supplies "
                "the 8 MHz clock), power-cycle the board, and if it persists, flash the "
                "build again"
                if info.clock_status & 0x01
                else "power-cycle the board; if it persists, report it with this line",
            )
        elif want and info.core_clock_hz != want:
            self._add(
                "clock",
                "FAIL",
                f"core clock {info.core_clock_hz} Hz, the build expects {want} Hz",
                "flash this build (`ditmos flash --build BUILD_DIR`)",
            )
        else:
            self._add("clock", "PASS", info.clock_text)

    def _known_answer(self) -> None:
        cases = self.manifest.get("known_answers")
        if not cases:
            self._add(
                "known answer",
                "SKIP",
                "the build records no known answers (no host C compiler at build time)",
                "install gcc and run `ditmos build` again",
            )
            return
        costs = []
        for n, case in enumerate(cases):
            res = self.client.infer(bytes.fromhex(case["input"]))
            got = (res.predicted, res.route, list(res.scores))
            want = (case["predicted"], case["route"], list(case["scores"]))
            if got != want:
                self._add(
                    "known answer",
                    "FAIL",
                    f"input {n}: device answered class {got[0]} via classifier {got[1]}, "
                    f"scores {got[2]}; the host reference says class {want[0]} via "
                    f"{want[1]}, scores {want[2]}",
                    "the image on the board is not this build (flash it again); if it "
                    "is, the device computes differently from the reference: report it",
                )
                return
            costs.append(res.cost)
        routes = sorted({c["route"] for c in cases})
        cost = f"; {min(costs)}-{max(costs)} cycles each" if any(costs) else ""
        self._add(
            "known answer",
            "PASS",
            f"{len(cases)} inputs: every class, route and score equals the host reference (routes {routes}){cost}",
        )

    def _stack(self) -> None:
        st = self.client.stats()
        if not st.stack_size:
            self._add("stack", "SKIP", "this board does not measure its stack")
        elif st.stack_high_water + STACK_MARGIN > st.stack_size:
            self._add(
                "stack",
                "FAIL",
                f"{st.stack_high_water} of {st.stack_size} B used",
                "raise stack_size for this board in ditmos/boards/boards.json and build again",
            )
        else:
            self._add(
                "stack",
                "PASS",
                f"{st.stack_high_water} of {st.stack_size} B used ({100 * st.stack_high_water / st.stack_size:.0f} %)",
            )

    def _timing(self, info) -> None:
        from ditmos.harness.protocol import CostKind

        clock = info.core_clock_hz
        if info.cost_kind == CostKind.INSTRUCTIONS:
            self._add("timing", "SKIP", "an emulator: it counts instructions, not cycles")
            return
        if not clock or info.cycles_now is None:
            self._add("timing", "SKIP", "this board reports no cycle counter")
            return
        seconds = min(self.seconds, 0.8 * 2**32 / clock)  # stay below one counter wrap
        first = self.client.hello()
        t0 = time.monotonic()
        time.sleep(seconds)
        second = self.client.hello()
        t1 = time.monotonic()
        if second.boot_counter != first.boot_counter:
            self._add(
                "timing",
                "FAIL",
                "the board rebooted during the measurement",
                "check the power supply (USB cable and port) and run again",
            )
            return
        cycles = (second.cycles_now - first.cycles_now) & 0xFFFFFFFF
        device_s, host_s = cycles / clock, t1 - t0
        ratio = device_s / host_s
        detail = (
            f"{cycles} cycles in {host_s:.3f} s of host time: "
            f"{cycles / host_s / 1e6:.2f} MHz against the stated {clock / 1e6:g} MHz"
        )
        if abs(ratio - 1) > TIMING_TOLERANCE:
            self._add(
                "timing",
                "FAIL",
                detail + f" ({100 * (ratio - 1):+.1f} %)",
                "the core does not run at the clock it reports, so latencies converted "
                "from cycles are wrong; power-cycle the board and check the clock line "
                "above",
            )
        else:
            self._add("timing", "PASS", detail + f" ({100 * (ratio - 1):+.2f} %, limit {100 * TIMING_TOLERANCE:g} %)")


def selftest(
    port: str,
    build_dir: Path,
    *,
    baudrate: int | None = None,
    seconds: float = 2.0,
    timeout: float = 2.0,
    echo: Callable[[str], None] = print,
) -> list[Check]:
    """Run every check against the device on ``port``; returns the checks."""
    from ditmos.boards.flash import load_manifest
    from ditmos.harness.client import DeviceClient
    from ditmos.harness.transport import SerialTransport

    manifest = load_manifest(build_dir)
    baud = baudrate or manifest.get("baud") or 115200
    transport = SerialTransport(port, baud)
    transport.open()
    try:
        client = DeviceClient(transport, timeout=timeout, retries=2, probe_every=10**9)
        return SelfTest(client, manifest, seconds=seconds, echo=echo).run()
    except DitmosError as err:
        echo(f"FAIL  {'link':<12} {err}")
        return [Check("link", "FAIL", str(err))]
    finally:
        transport.close()
