"""Read a kernel module's .modinfo section (what `modinfo` prints) without running modinfo.

Running `modinfo -F firmware` for thousands of modules costs a process each; reading the ELF
section headers ourselves reads a few kilobytes per uncompressed module. Compressed modules
(.ko.xz, .ko.zst, .ko.gz) are decompressed in memory.
"""

from __future__ import annotations

import gzip
import lzma
import os
import struct
from pathlib import Path

import zstandard

from rescue_runtime.errors import MkmediaError

COMPRESSED_SUFFIXES = (".ko.xz", ".ko.zst", ".ko.gz")


class ModinfoError(MkmediaError):
    """A module file is not a readable ELF relocatable object."""


def _decompress(path: Path) -> bytes:
    name = path.name
    if name.endswith(".xz"):
        return lzma.decompress(path.read_bytes())
    if name.endswith(".gz"):
        return gzip.decompress(path.read_bytes())
    if name.endswith(".zst"):
        # Kernel build zstd frames may lack the content size: stream-decompress.
        with open(path, "rb") as f:
            return zstandard.ZstdDecompressor().stream_reader(f).read()
    return path.read_bytes()


class _Reader:
    """Random access to either an open file (uncompressed) or bytes in memory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: bytes | None = None
        self.file = None
        if path.name.endswith(COMPRESSED_SUFFIXES):
            self.data = _decompress(path)
        else:
            self.file = open(path, "rb")  # noqa: SIM115 - closed in close()

    def read(self, offset: int, size: int) -> bytes:
        if self.data is not None:
            chunk = self.data[offset : offset + size]
        else:
            assert self.file is not None
            self.file.seek(offset)
            chunk = self.file.read(size)
        if len(chunk) != size:
            raise ModinfoError(
                f"The kernel module {self.path} is truncated (wanted {size} bytes at {offset}).",
                hint="Reinstall the kernel package that owns it.",
            )
        return chunk

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


def modinfo_section(path: str | os.PathLike[str]) -> bytes:
    """The raw bytes of the module's .modinfo section (NUL-separated key=value strings)."""
    reader = _Reader(Path(path))
    try:
        ident = reader.read(0, 16)
        if ident[:4] != b"\x7fELF":
            raise ModinfoError(
                f"{path} is not an ELF file, so it is not a kernel module.",
                hint="Remove it from the modules directory or reinstall the kernel package.",
            )
        is64 = ident[4] == 2
        endian = "<" if ident[5] == 1 else ">"
        if is64:
            # e_shoff at 0x28, e_shentsize/e_shnum/e_shstrndx at 0x3A.
            (shoff,) = struct.unpack(endian + "Q", reader.read(0x28, 8))
            shentsize, shnum, shstrndx = struct.unpack(endian + "HHH", reader.read(0x3A, 6))
            sh_fmt = endian + "IIQQQQIIQQ"
        else:
            (shoff,) = struct.unpack(endian + "I", reader.read(0x20, 4))
            shentsize, shnum, shstrndx = struct.unpack(endian + "HHH", reader.read(0x2E, 6))
            sh_fmt = endian + "IIIIIIIIII"
        table = reader.read(shoff, shentsize * shnum)
        headers = [struct.unpack_from(sh_fmt, table, i * shentsize) for i in range(shnum)]
        # Section header fields: name, type, flags, addr, offset, size, ...
        strtab_hdr = headers[shstrndx]
        names = reader.read(strtab_hdr[4], strtab_hdr[5])
        for hdr in headers:
            end = names.find(b"\0", hdr[0])
            if names[hdr[0] : end] == b".modinfo":
                return reader.read(hdr[4], hdr[5])
        return b""
    finally:
        reader.close()


def modinfo(path: str | os.PathLike[str]) -> list[tuple[str, str]]:
    """The module's key=value pairs in section order (keys repeat, e.g. alias, firmware)."""
    pairs: list[tuple[str, str]] = []
    for raw in modinfo_section(path).split(b"\0"):
        if b"=" not in raw:
            continue
        key, value = raw.decode("utf-8", errors="replace").split("=", 1)
        pairs.append((key, value))
    return pairs


def modinfo_field(path: str | os.PathLike[str], key: str) -> list[str]:
    """Every value of one field, as `modinfo -F KEY` prints them (in the same order)."""
    return [value for k, value in modinfo(path) if k == key]


def module_firmware(path: str | os.PathLike[str]) -> list[str]:
    """The firmware files a module declares (MODULE_FIRMWARE), like `modinfo -F firmware`."""
    return modinfo_field(path, "firmware")
