"""The host board as a device: the firmware process on a pseudo-terminal.

``HostDevice(build_dir)`` runs BUILD_DIR/firmware.elf built with
``ditmos build --board host`` and gives a serial port path (``port``/``url``,
e.g. ``/dev/pts/7``) that pyserial opens like a real board::

    with HostDevice("build/host") as dev:
        ser = serial.serial_for_url(dev.url)

The firmware reads and writes the pseudo-terminal's controller side.  A RESET
request makes it exit with code 75 after sending RESET_OK; the launcher then
starts it again on the same terminal, with the boot counter (no-init RAM on a
microcontroller) kept in ``workdir/boot_state`` through the environment
variable DITMOS_HOST_STATE.  ``boots`` counts the starts.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
import tty
from pathlib import Path

from ditmos.errors import DitmosError

RESET_EXIT = 75


class HostDevice:
    def __init__(self, build_dir: str | Path, *, workdir: str | Path | None = None):
        self.build_dir = Path(build_dir)
        manifest = self.build_dir / "manifest.json"
        if not manifest.is_file():
            raise DitmosError(
                f"{self.build_dir} is not a firmware build directory "
                "(no manifest.json); run `ditmos build --board host` first"
            )
        board = json.loads(manifest.read_text()).get("board")
        if board != "host":
            raise DitmosError(f"{self.build_dir} was built for {board}, not for the host board")
        self.exe = self.build_dir / "firmware.elf"
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir else None
        self.port: str | None = None
        self.boots = 0
        self.returncode: int | None = None
        self._controller = self._device_fd = None
        self._proc: subprocess.Popen | None = None
        self._stopping = False
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return self.port

    @property
    def state_file(self) -> Path:
        return self.workdir / "boot_state"

    def _spawn(self) -> None:
        env = dict(os.environ, DITMOS_HOST_STATE=str(self.state_file))
        self._proc = subprocess.Popen(
            [str(self.exe)], stdin=self._controller, stdout=self._controller, env=env, close_fds=True
        )
        self.boots += 1

    def _supervise(self) -> None:
        while True:
            proc = self._proc
            code = proc.wait()
            with self._lock:
                if self._stopping or code != RESET_EXIT:
                    self.returncode = code
                    return
                self._spawn()

    def start(self) -> "HostDevice":
        if self._proc is not None:
            raise DitmosError("this host device is already running")
        if not os.access(self.exe, os.X_OK):
            raise DitmosError(f"{self.exe} is missing or not executable; rebuild with `ditmos build --board host`")
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="ditmos-host-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._controller, self._device_fd = os.openpty()
        tty.setraw(self._device_fd)
        self.port = os.ttyname(self._device_fd)
        self._stopping = False
        self._spawn()
        self._thread = threading.Thread(target=self._supervise, daemon=True, name="ditmos-host-device")
        self._thread.start()
        return self

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self) -> int | None:
        with self._lock:
            self._stopping = True
            proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        for fd in (self._controller, self._device_fd):
            if fd is not None:
                os.close(fd)
        self._controller = self._device_fd = None
        self._proc = None
        if self._own_workdir and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
        return self.returncode

    def __enter__(self) -> "HostDevice":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
