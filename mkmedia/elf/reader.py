"""Read what the loader looks at in an ELF file: class, machine, PT_INTERP, the dynamic
section (DT_NEEDED, DT_RPATH, DT_RUNPATH, DT_SONAME, DT_FLAGS_1) and `.note.dlopen` notes."""

from __future__ import annotations

import errno
import json
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

ELF_MAGIC = b"\x7fELF"
DLOPEN_NOTE_TYPE = 0x407C0C0A
DLOPEN_NOTE_OWNER = "FDO"
DLOPEN_PRIORITIES = ("required", "recommended", "suggested")
DF_1_NODEFLIB = 0x800

# e_machine values (from elf.h) we know the Debian multiarch layout of.
EM_386 = 3
EM_ARM = 40
EM_X86_64 = 62
EM_AARCH64 = 183
EM_RISCV = 243
EM_PPC64 = 21
EM_S390 = 22


@dataclass(frozen=True)
class ElfInfo:
    """What the loader looks at in one ELF object."""

    elf_class: int  # 32 or 64
    machine: int  # e_machine
    little_endian: bool
    elf_type: str  # ET_EXEC, ET_DYN, ET_REL, ...
    interp: str | None
    needed: tuple[str, ...]
    rpath: tuple[str, ...]
    runpath: tuple[str, ...]
    soname: str | None
    nodeflib: bool
    dlopen: tuple[tuple[str, str, str, tuple[str, ...]], ...]  # feature, description, prio, names

    @property
    def is_dynamic(self) -> bool:
        return self.interp is not None or bool(self.needed)

    @property
    def kind(self) -> tuple[int, int]:
        return (self.elf_class, self.machine)

    @classmethod
    def of(
        cls,
        elf_class: int,
        machine: int,
        little_endian: bool,
        elf_type: str,
        interp: str | None,
        dynamic: tuple[list[str], list[str], list[str], str | None, int],
        notes: list[tuple[str, str, str, tuple[str, ...]]],
    ) -> ElfInfo:
        """From the dynamic section's (needed, rpath, runpath, soname, DT_FLAGS_1)."""
        needed, rpath, runpath, soname, flags_1 = dynamic
        return cls(
            elf_class=elf_class,
            machine=machine,
            little_endian=little_endian,
            elf_type=elf_type,
            interp=interp,
            needed=tuple(needed),
            # glibc ignores DT_RPATH when DT_RUNPATH is present.
            rpath=() if runpath else tuple(rpath),
            runpath=tuple(runpath),
            soname=soname,
            nodeflib=bool(flags_1 & DF_1_NODEFLIB),
            dlopen=tuple(notes),
        )


def read_head(path: str, size: int = 64) -> bytes:
    """The first `size` bytes of a file (ELF header, or a script's shebang line)."""
    with open(path, "rb") as f:
        return f.read(size)


def parse_dlopen_notes(data: bytes, little: bool) -> list[tuple[str, str, str, tuple[str, ...]]]:
    """Parse the notes of a .note.dlopen section (systemd's FDO dlopen JSON format)."""
    out: list[tuple[str, str, str, tuple[str, ...]]] = []
    fmt = "<III" if little else ">III"
    pos = 0
    while pos + 12 <= len(data):
        namesz, descsz, ntype = struct.unpack_from(fmt, data, pos)
        pos += 12
        name = data[pos : pos + namesz].rstrip(b"\0").decode("ascii", "replace")
        pos += (namesz + 3) & ~3
        desc = data[pos : pos + descsz]
        pos += (descsz + 3) & ~3
        if name != DLOPEN_NOTE_OWNER or ntype != DLOPEN_NOTE_TYPE:
            continue
        try:
            entries = json.loads(desc.rstrip(b"\0").decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            continue
        if not isinstance(entries, list):
            continue
        for entry in entries:
            if not isinstance(entry, dict):
                continue
            names = entry.get("soname", [])
            if isinstance(names, str):
                names = [names]
            sonames = tuple(n for n in names if isinstance(n, str))
            if not sonames:
                continue
            priority = entry.get("priority", "recommended")
            if priority not in DLOPEN_PRIORITIES:
                priority = "recommended"
            out.append(
                (
                    str(entry.get("feature", "")),
                    str(entry.get("description", "")),
                    priority,
                    sonames,
                )
            )
    return out


_ET_NAMES = {0: "ET_NONE", 1: "ET_REL", 2: "ET_EXEC", 3: "ET_DYN", 4: "ET_CORE"}
_DT_NEEDED, _DT_STRTAB, _DT_STRSZ, _DT_SONAME, _DT_RPATH, _DT_RUNPATH = 1, 5, 10, 14, 15, 29
_DT_FLAGS_1 = 0x6FFFFFFB
_PT_LOAD, _PT_DYNAMIC, _PT_INTERP = 1, 2, 3
_SHT_NOTE = 7


def _cstr(data: bytes, offset: int) -> str:
    end = data.find(b"\0", offset)
    if offset < 0 or offset >= len(data) or end < 0:
        raise ValueError(f"string offset {offset} outside the string table")
    return data[offset:end].decode("utf-8", "surrogateescape")


def read_elf(host_path: str) -> ElfInfo | None:
    """Parse one file; None when it is not an ELF file. Raises OSError when unreadable or
    malformed.

    Reads only the ELF header, the program headers, the dynamic section with its string table
    and the section headers (for .note.dlopen), with `struct`: the loader looks at nothing else.
    """
    with open(host_path, "rb") as f:
        head = f.read(64)
        if head[:4] != ELF_MAGIC:
            return None
        try:
            return _read_elf(f, head)
        except (struct.error, ValueError, IndexError, KeyError) as exc:
            raise OSError(errno.ENOEXEC, f"malformed ELF file ({exc!r})") from exc


def _read_elf(f: BinaryIO, head: bytes) -> ElfInfo:
    if head[4] not in (1, 2) or head[5] not in (1, 2):
        raise ValueError("unknown ELF class or byte order")
    is64 = head[4] == 2
    e = "<" if head[5] == 1 else ">"
    if is64:
        (e_type, machine, _, _, phoff, shoff, _, _, phentsize, phnum, shentsize, shnum,
         shstrndx) = struct.unpack_from(e + "HHIQQQIHHHHHH", head, 16)  # fmt: skip
        ph_fmt, dyn_fmt, sh_fmt = e + "IIQQQQQQ", e + "qQ", e + "IIQQQQIIQQ"
    else:
        (e_type, machine, _, _, phoff, shoff, _, _, phentsize, phnum, shentsize, shnum,
         shstrndx) = struct.unpack_from(e + "HHIIIIIHHHHHH", head, 16)  # fmt: skip
        ph_fmt, dyn_fmt, sh_fmt = e + "IIIIIIII", e + "iI", e + "IIIIIIIIII"

    def read_at(offset: int, size: int) -> bytes:
        f.seek(offset)
        data = f.read(size)
        if len(data) != size:
            raise ValueError(f"truncated at offset {offset}")
        return data

    # (p_type, p_offset, p_vaddr, p_filesz) of every program header.
    segments: list[tuple[int, int, int, int]] = []
    if phnum:
        table = read_at(phoff, phentsize * phnum)
        for i in range(phnum):
            fields = struct.unpack_from(ph_fmt, table, i * phentsize)
            if is64:
                segments.append((fields[0], fields[2], fields[3], fields[5]))
            else:
                segments.append((fields[0], fields[1], fields[2], fields[4]))

    def vaddr_to_offset(vaddr: int) -> int:
        for p_type, p_offset, p_vaddr, p_filesz in segments:
            if p_type == _PT_LOAD and p_vaddr <= vaddr < p_vaddr + p_filesz:
                return vaddr - p_vaddr + p_offset
        raise ValueError(f"address {vaddr:#x} is in no loaded segment")

    interp: str | None = None
    tags: list[tuple[int, int]] = []
    for p_type, p_offset, _, p_filesz in segments:
        if p_type == _PT_INTERP:
            interp = read_at(p_offset, p_filesz).split(b"\0", 1)[0].decode("utf-8", "replace")
        elif p_type == _PT_DYNAMIC:
            size = struct.calcsize(dyn_fmt)
            data = read_at(p_offset, p_filesz - p_filesz % size)
            for tag, val in struct.iter_unpack(dyn_fmt, data):
                if tag == 0:  # DT_NULL
                    break
                tags.append((tag, val))
    needed: list[str] = []
    rpath: list[str] = []
    runpath: list[str] = []
    soname: str | None = None
    flags_1 = 0
    values = dict(tags)
    if any(t in (_DT_NEEDED, _DT_SONAME, _DT_RPATH, _DT_RUNPATH) for t, _ in tags):
        strtab = read_at(vaddr_to_offset(values[_DT_STRTAB]), values[_DT_STRSZ])
        for tag, val in tags:
            if tag == _DT_NEEDED:
                needed.append(_cstr(strtab, val))
            elif tag == _DT_RPATH:
                rpath.extend(_cstr(strtab, val).split(":"))
            elif tag == _DT_RUNPATH:
                runpath.extend(_cstr(strtab, val).split(":"))
            elif tag == _DT_SONAME:
                soname = _cstr(strtab, val)
    flags_1 = values.get(_DT_FLAGS_1, 0)

    notes: list[tuple[str, str, str, tuple[str, ...]]] = []
    if shoff and shentsize and e_type != 1:
        notes = _read_dlopen_section(
            read_at, shoff, shentsize, shnum, shstrndx, sh_fmt, head[5] == 1
        )
    return ElfInfo.of(
        64 if is64 else 32,
        machine,
        head[5] == 1,
        _ET_NAMES.get(e_type, str(e_type)),
        interp,
        (needed, rpath, runpath, soname, flags_1),
        notes,
    )


def _read_dlopen_section(
    read_at: Callable[[int, int], bytes],
    shoff: int,
    shentsize: int,
    shnum: int,
    shstrndx: int,
    sh_fmt: str,
    little: bool,
) -> list[tuple[str, str, str, tuple[str, ...]]]:
    """The notes of the .note.dlopen section, if the file has one."""

    def header(i: int) -> tuple[int, int, int, int]:  # sh_name, sh_type, sh_offset, sh_size
        fields = struct.unpack_from(sh_fmt, read_at(shoff + i * shentsize, shentsize))
        return fields[0], fields[1], fields[4], fields[5]  # same positions in both classes

    if shnum == 0 or shstrndx == 0xFFFF:  # extended numbering: the real values in section 0
        first = struct.unpack_from(sh_fmt, read_at(shoff, shentsize))
        shnum = shnum or first[5]
        if shstrndx == 0xFFFF:
            shstrndx = first[6]
    if not shnum or shstrndx >= shnum:
        return []
    table = read_at(shoff, shentsize * shnum)
    _, _, str_off, str_size = header(shstrndx)
    names = read_at(str_off, str_size)
    for i in range(shnum):
        fields = struct.unpack_from(sh_fmt, table, i * shentsize)
        if fields[1] != _SHT_NOTE:
            continue
        if names[fields[0] : fields[0] + 13] == b".note.dlopen\0":
            return parse_dlopen_notes(read_at(fields[4], fields[5]), little)
    return []


def elf_kind(head: bytes) -> tuple[int, int] | None:
    """(class, machine) from the first 20 bytes, or None when not ELF."""
    if len(head) < 20 or head[:4] != ELF_MAGIC:
        return None
    elf_class = {1: 32, 2: 64}.get(head[4])
    if elf_class is None:
        return None
    fmt = "<H" if head[5] == 1 else ">H"
    return elf_class, struct.unpack_from(fmt, head, 18)[0]


def is_elf(host_path: str) -> bool:
    """True when the file starts with the ELF magic (unreadable files raise OSError)."""
    with open(host_path, "rb") as f:
        return f.read(4) == ELF_MAGIC
