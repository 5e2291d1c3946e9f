"""A small ELF reader: section headers and the symbol table, 32 or 64 bit.

Enough for memory tables, vector-table checks and symbol addresses (the QEMU
marker); no dependency beyond the standard library.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from ditmos.errors import DitmosError

SHT_SYMTAB = 2
SHT_NOBITS = 8
SHF_WRITE = 0x1
SHF_ALLOC = 0x2
SHF_EXECINSTR = 0x4


@dataclass(frozen=True)
class Section:
    name: str
    type: int
    flags: int
    addr: int
    offset: int
    size: int

    @property
    def alloc(self) -> bool:
        return bool(self.flags & SHF_ALLOC)

    @property
    def nobits(self) -> bool:
        return self.type == SHT_NOBITS


@dataclass(frozen=True)
class Symbol:
    name: str
    value: int
    size: int


class Elf:
    """Parsed sections and symbols of one ELF file."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self.data = self.path.read_bytes()
        except OSError as err:
            raise DitmosError(f"cannot read ELF file {self.path}: {err.strerror}") from None
        d = self.data
        if d[:4] != b"\x7fELF" or d[4] not in (1, 2) or d[5] != 1:
            raise DitmosError(f"{self.path} is not a little-endian ELF file")
        self.is64 = d[4] == 2
        if self.is64:
            (self.entry, shoff) = struct.unpack_from("<QxxxxxxxxQ", d, 24)
            shentsize, shnum, shstrndx = struct.unpack_from("<HHH", d, 58)
            fmt = "<IIQQQQIIQQ"
        else:
            (self.entry, shoff) = struct.unpack_from("<IxxxxI", d, 24)
            shentsize, shnum, shstrndx = struct.unpack_from("<HHH", d, 46)
            fmt = "<IIIIIIIIII"
        self.machine = struct.unpack_from("<H", d, 18)[0]
        raw = [struct.unpack_from(fmt, d, shoff + i * shentsize) for i in range(shnum)]
        strtab = raw[shstrndx] if shnum else None

        def name_at(table, off: int) -> str:
            start = table[4] + off
            return d[start : d.index(b"\0", start)].decode("ascii", "replace")

        self.sections: list[Section] = [Section(name_at(strtab, r[0]), r[1], r[2], r[3], r[4], r[5]) for r in raw]
        self.symbols: dict[str, Symbol] = {}
        for r in raw:
            if r[1] != SHT_SYMTAB:
                continue
            link = raw[r[6]]
            entsize = r[9]
            for i in range(r[5] // entsize):
                off = r[4] + i * entsize
                if self.is64:
                    st_name, _info, _other, _shndx, value, size = struct.unpack_from("<IBBHQQ", d, off)
                else:
                    st_name, value, size = struct.unpack_from("<III", d, off)
                if st_name:
                    self.symbols.setdefault(name_at(link, st_name), Symbol(name_at(link, st_name), value, size))

    def section(self, name: str) -> Section | None:
        for s in self.sections:
            if s.name == name:
                return s
        return None

    def size(self, name: str) -> int:
        s = self.section(name)
        return s.size if s else 0

    def read(self, addr: int, size: int) -> bytes:
        """Bytes at a virtual address, from the section that holds them."""
        for s in self.sections:
            if s.alloc and not s.nobits and s.addr <= addr and addr + size <= s.addr + s.size:
                start = s.offset + addr - s.addr
                return self.data[start : start + size]
        raise DitmosError(f"{self.path}: no loaded section holds 0x{addr:08x}..+{size}")

    def symbol(self, name: str) -> Symbol:
        try:
            return self.symbols[name]
        except KeyError:
            raise DitmosError(f"{self.path} has no symbol '{name}'") from None
