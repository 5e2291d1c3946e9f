"""Run an mps2_an500 firmware in QEMU with its UART on a loopback TCP socket.

``QemuTarget(build_dir)`` is the reusable piece (``ditmos emulate``, the
harness, tests)::

    with QemuTarget("build/mps2") as t:
        ser = serial.serial_for_url(t.url)    # socket://127.0.0.1:PORT
        ...                                    # INFER, then read t.plugin_log

QEMU runs with ``-icount shift=0`` (deterministic virtual time), semihosting
(the guest's exit code becomes QEMU's) and the project's TCG plugin, which
writes ``mark <id> <instructions>`` lines to ``plugin_log`` (see
firmware/tools/ditmos_insn_plugin.c and docs/protocol.md, cost_kind = 1).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlparse

from ditmos.boards.registry import get_board
from ditmos.errors import DitmosError
from ditmos.paths import firmware_dir

QEMU = "qemu-system-arm"
ANNOUNCE_DIR = "emulators"  # BUILD_DIR/emulators/PORT.json while `ditmos emulate` runs
PLUGIN_SOURCE = "tools/ditmos_insn_plugin.c"
PLUGIN_NAME = "libditmos_insn.so"


def qemu_binary() -> str:
    path = shutil.which(QEMU)
    if path is None:
        raise DitmosError(
            f"{QEMU} is not installed; on Debian/Ubuntu run `apt-get install qemu-system-arm` (or scripts/setup.sh)"
        )
    return path


def build_plugin(dest_dir: str | Path) -> Path:
    """Compile the instruction-count plugin into dest_dir (skipped when current)."""
    src = firmware_dir() / PLUGIN_SOURCE
    dest = Path(dest_dir) / PLUGIN_NAME
    if dest.exists() and dest.stat().st_mtime >= src.stat().st_mtime:
        return dest
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        raise DitmosError("building the QEMU plugin needs a host C compiler (gcc)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(f".{os.getpid()}.tmp")
    proc = subprocess.run(
        [cc, "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(tmp), str(src)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise DitmosError(f"compiling the QEMU plugin {src} failed: {proc.stderr.strip()}")
    os.replace(tmp, dest)
    return dest


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class QemuTarget:
    """One QEMU instance running BUILD_DIR/firmware.elf.

    build_dir: a ``ditmos build --board mps2_an500`` output (manifest.json,
    firmware.elf).  workdir: where the plugin log and QEMU's own output go (a
    temporary directory, removed at stop(), when not given).  port: the TCP
    port on 127.0.0.1 (a free one when None).
    """

    def __init__(
        self,
        build_dir: str | Path,
        *,
        workdir: str | Path | None = None,
        port: int | None = None,
        icount: bool = True,
        plugin: bool = True,
    ):
        self.build_dir = Path(build_dir)
        manifest_path = self.build_dir / "manifest.json"
        if not manifest_path.is_file():
            raise DitmosError(
                f"{self.build_dir} is not a firmware build directory "
                "(no manifest.json); run `ditmos build --board mps2_an500` first"
            )
        self.manifest = json.loads(manifest_path.read_text())
        board = get_board(self.manifest.get("board", "?"))
        self.qemu = board.extra.get("qemu")
        if not self.qemu:
            raise DitmosError(
                f"{self.build_dir} was built for {board.name}, which QEMU cannot emulate; build with --board mps2_an500"
            )
        self.elf = self.build_dir / "firmware.elf"
        if not self.elf.is_file():
            raise DitmosError(f"{self.elf} is missing; rebuild with `ditmos build`")
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir else None
        self.port = port
        self.icount = icount
        self.plugin = plugin
        self.proc: subprocess.Popen | None = None
        self.returncode: int | None = None

    # -- paths -------------------------------------------------------------
    @property
    def url(self) -> str:
        """pyserial URL of the guest's UART0."""
        return f"socket://127.0.0.1:{self.port}"

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    @property
    def plugin_log(self) -> Path:
        return self.workdir / "marks.log"

    @property
    def qemu_log(self) -> Path:
        return self.workdir / "qemu.log"

    # -- life cycle --------------------------------------------------------
    def command(self) -> list[str]:
        cmd = [
            qemu_binary(),
            "-M",
            self.qemu["machine"],
            "-cpu",
            self.qemu["cpu"],
            "-nographic",
            "-monitor",
            "none",
            "-nodefaults",
            "-semihosting-config",
            "enable=on,target=native",
            "-kernel",
            str(self.elf),
            "-serial",
            f"tcp:127.0.0.1:{self.port},server=on,wait=off,nodelay=on",
        ]
        if self.icount:
            cmd += ["-icount", "shift=0"]
        if self.plugin:
            marker = self.manifest.get("marker")
            if not marker:
                raise DitmosError(
                    f"{self.build_dir}/manifest.json has no marker address; "
                    "rebuild with `ditmos build --board mps2_an500`"
                )
            so = build_plugin(self.workdir)
            cmd += ["-plugin", f"{so},log={self.plugin_log},sled={marker['sled']},sled_size={marker['sled_size']}"]
        return cmd

    def start(self, timeout: float = 10.0) -> "QemuTarget":
        if self.proc is not None:
            raise DitmosError("this QEMU target is already running")
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="ditmos-qemu-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        fixed_port = self.port is not None
        for attempt in range(3):
            if not fixed_port:
                self.port = _free_port()
            self.plugin_log.unlink(missing_ok=True)
            log = open(self.qemu_log, "wb")
            self.proc = subprocess.Popen(
                self.command(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
            log.close()
            if self._wait_listening(timeout):
                return self
            self._reap()
            if fixed_port or attempt == 2:
                break
        detail = self.qemu_log.read_text(errors="replace").strip()[-400:]
        raise DitmosError(f"QEMU did not start listening on 127.0.0.1:{self.port}: {detail}")

    def _wait_listening(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            if self._listening():
                return True
            time.sleep(0.05)
        return False

    def _listening(self) -> bool:
        """True once QEMU's server socket is bound (read from /proc, so no
        client connection is used up for the check)."""
        try:
            rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
        except OSError:
            rows = None
        if rows is None:  # no /proc: connect and let go
            try:
                socket.create_connection(self.address, timeout=0.2).close()
                return True
            except OSError:
                return False
        want = f":{self.port:04X}"
        return any(r.split()[1].endswith(want) and r.split()[3] == "0A" for r in rows)

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the guest to exit (semihosting) and return QEMU's exit code."""
        if self.proc is None:
            raise DitmosError("QEMU is not running")
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise DitmosError(f"the emulated firmware did not exit within {timeout} s") from None
        return self.returncode

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _reap(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.returncode = self.proc.returncode
        self.proc = None

    def stop(self) -> int | None:
        """Stop QEMU (if still running) and return its exit code."""
        self._reap()
        if self._own_workdir and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
        return self.returncode

    def __enter__(self) -> "QemuTarget":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# -------------------------------------------------- emulators started elsewhere


@dataclass(frozen=True)
class Emulator:
    """A running QEMU that announced itself in its build directory: where its
    serial port is and where its plugin writes the instruction-count marks."""

    url: str
    port: int
    marks: Path
    pid: int

    def to_json(self) -> dict:
        return {**asdict(self), "marks": str(self.marks)}


def _announce_path(build_dir: Path, port: int) -> Path:
    return Path(build_dir) / ANNOUNCE_DIR / f"{port}.json"


def announce(target: QemuTarget) -> Path:
    """Record a running target in BUILD_DIR/emulators/PORT.json, so that
    ``ditmos evaluate --port socket://127.0.0.1:PORT --build BUILD_DIR`` finds
    its marks log (docs/protocol.md, cost_kind 1)."""
    if not target.running():
        raise DitmosError("only a running QEMU target can be announced")
    path = _announce_path(target.build_dir, target.port)
    path.parent.mkdir(parents=True, exist_ok=True)
    emu = Emulator(url=target.url, port=target.port, marks=target.plugin_log.resolve(), pid=target.proc.pid)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(emu.to_json(), indent=1) + "\n")
    os.replace(tmp, path)
    return path


def withdraw(target: QemuTarget) -> None:
    """Remove the announcement of ``target`` (when it is still this target's)."""
    if target.port is None:
        return
    path = _announce_path(target.build_dir, target.port)
    try:
        if json.loads(path.read_text()).get("marks") == str(target.plugin_log.resolve()):
            path.unlink()
    except (OSError, ValueError):
        pass


def _alive(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        try:
            os.kill(pid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True
    return b"qemu" in cmdline


def find_emulator(build_dir: Path, url: str) -> Emulator | None:
    """The emulator announced for ``build_dir`` on ``url`` (a ``socket://`` URL
    on this machine), or None.  Announcements of QEMUs that are gone (killed
    without cleaning up) are ignored."""
    parsed = urlparse(url)
    if parsed.scheme != "socket" or parsed.hostname not in ("127.0.0.1", "localhost"):
        return None
    try:
        port = parsed.port
    except ValueError:
        return None
    path = _announce_path(build_dir, port) if port else None
    if path is None or not path.is_file():
        return None
    try:
        d = json.loads(path.read_text())
        emu = Emulator(url=str(d["url"]), port=int(d["port"]), marks=Path(d["marks"]), pid=int(d["pid"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return emu if _alive(emu.pid) else None
