"""Byte transports to a device: one small interface, one implementation.

A real serial port (``/dev/ttyACM0``), a pseudo-terminal (the host-compiled
firmware) and QEMU's UART on a loopback TCP socket (``socket://127.0.0.1:PORT``)
all go through pyserial's ``serial_for_url``: the same code path everywhere.
"""

from __future__ import annotations

import abc

from ditmos.errors import DitmosError


class Transport(abc.ABC):
    """open / read / write / close; ``read`` returns what arrived within ``timeout``."""

    url: str

    @abc.abstractmethod
    def open(self) -> "Transport": ...

    @abc.abstractmethod
    def read(self, timeout: float) -> bytes:
        """Wait up to ``timeout`` seconds for at least one byte; return all bytes available."""

    @abc.abstractmethod
    def write(self, data: bytes) -> None: ...

    @abc.abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> "Transport":
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()


class SerialTransport(Transport):
    """pyserial: device paths, ``socket://host:port``, ``loop://`` and the other URL forms."""

    def __init__(self, url: str, baudrate: int = 115200) -> None:
        self.url = url
        self.baudrate = baudrate
        self._ser = None

    def open(self) -> "SerialTransport":
        import serial

        if self._ser is not None:
            return self
        try:
            self._ser = serial.serial_for_url(self.url, baudrate=self.baudrate, timeout=0.1, write_timeout=10.0)
        except (serial.SerialException, OSError, ValueError) as err:
            raise DitmosError(f"cannot open serial port {self.url}: {err}") from err
        return self

    def _port(self):
        if self._ser is None:
            raise DitmosError(f"serial port {self.url} is not open")
        return self._ser

    def read(self, timeout: float) -> bytes:
        import serial

        ser = self._port()
        try:
            ser.timeout = max(timeout, 0.0)
            first = ser.read(1)
            if not first:
                return b""
            ser.timeout = 0
            return first + ser.read(65536)
        except (serial.SerialException, OSError) as err:
            raise DitmosError(f"reading from {self.url} failed: {err}") from err

    def write(self, data: bytes) -> None:
        import serial

        ser = self._port()
        try:
            ser.write(data)
            ser.flush()
        except (serial.SerialException, OSError) as err:
            raise DitmosError(f"writing to {self.url} failed: {err}") from err

    def close(self) -> None:
        if self._ser is not None:
            try:
                self._ser.close()
            finally:
                self._ser = None


def open_transport(url: str, baudrate: int = 115200) -> Transport:
    return SerialTransport(url, baudrate).open()
