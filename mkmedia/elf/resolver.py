"""ELF dependency resolver: which files a set of programs and libraries needs to run.

It follows PT_INTERP, DT_NEEDED, DT_RPATH/DT_RUNPATH (with $ORIGIN, $LIB and $PLATFORM),
/etc/ld.so.conf (with its `include` globs), the loader's default directories and the
glibc-hwcaps and legacy hwcaps subdirectories, in the order glibc's loader searches them. It
simulates the loader per program (breadth-first, with the "already loaded" matching by name,
soname and file identity), so its answer agrees with `ldd` without running any loader.

All paths are "logical" absolute paths inside `root` (the host when root is "/", or a rescue
tree). Symlinks are resolved inside root, as `chroot` would, and every symlink met on the way is
reported, so copying the listed paths reproduces them.

Shebang scripts pull in their interpreter (and for `#!/usr/bin/env NAME` the program NAME from
PATH). `.note.dlopen` notes (systemd's FDO format) are read and offered as dlopen candidates.
"""

from __future__ import annotations

import errno
import fnmatch
import glob
import json
import os
import posixpath
import struct
from collections import deque
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any, BinaryIO

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from rescue_runtime.errors import MissingError, MkmediaError

ELF_MAGIC = b"\x7fELF"
DLOPEN_NOTE_TYPE = 0x407C0C0A
DLOPEN_NOTE_OWNER = "FDO"
DLOPEN_PRIORITIES = ("required", "recommended", "suggested")
DF_1_NODEFLIB = 0x800
DEFAULT_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
MAX_SYMLINKS = 40  # as the kernel's limit for one path walk
MAX_SHEBANG_DEPTH = 4  # Linux follows at most 4 nested interpreters (BINPRM_MAX_RECURSION)

# e_machine values (from elf.h) we know the Debian multiarch layout of.
EM_386 = 3
EM_ARM = 40
EM_X86_64 = 62
EM_AARCH64 = 183
EM_RISCV = 243
EM_PPC64 = 21
EM_S390 = 22


@dataclass(frozen=True)
class MachineLayout:
    """What the loader of one architecture substitutes and searches by default."""

    triplet: str  # Debian multiarch triplet
    platform: str  # the value of $PLATFORM (AT_PLATFORM)
    legacy_hwcap: str | None  # legacy hwcap subdirectory name (glibc 2.36 still searches it)


# (elf_class, e_machine) -> layout
_LAYOUTS: dict[tuple[int, int], MachineLayout] = {
    (64, EM_X86_64): MachineLayout("x86_64-linux-gnu", "x86_64", "x86_64"),
    (32, EM_X86_64): MachineLayout("x86_64-linux-gnux32", "x86_64", None),
    (32, EM_386): MachineLayout("i386-linux-gnu", "i686", None),
    (64, EM_AARCH64): MachineLayout("aarch64-linux-gnu", "aarch64", None),
    (32, EM_ARM): MachineLayout("arm-linux-gnueabihf", "v7l", None),
    (64, EM_RISCV): MachineLayout("riscv64-linux-gnu", "riscv64", None),
    (64, EM_PPC64): MachineLayout("powerpc64le-linux-gnu", "power8", None),
    (64, EM_S390): MachineLayout("s390x-linux-gnu", "z900", None),
}

# x86-64 micro-architecture levels: the /proc/cpuinfo flags each level needs beyond the last.
_X86_LEVELS: tuple[tuple[str, frozenset[str]], ...] = (
    (
        "x86-64-v2",
        frozenset({"cx16", "lahf_lm", "popcnt", "pni", "sse4_1", "sse4_2", "ssse3"}),
    ),
    (
        "x86-64-v3",
        frozenset({"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave"}),
    ),
    ("x86-64-v4", frozenset({"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"})),
)


def host_x86_hwcaps(cpuinfo: str = "/proc/cpuinfo") -> tuple[str, ...]:
    """The glibc-hwcaps levels this CPU supports, best first (what the loader searches)."""
    try:
        with open(cpuinfo, encoding="ascii", errors="replace") as f:
            flags: set[str] = set()
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.partition(":")[2].split())
                    break
    except OSError:
        return ()
    levels: list[str] = []
    for name, needed in _X86_LEVELS:
        if not needed <= flags:
            break
        levels.append(name)
    return tuple(reversed(levels))


# ---------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class DlopenNote:
    """One entry of a `.note.dlopen` note: a library the object may dlopen() at run time."""

    file: str  # the object carrying the note
    feature: str
    description: str
    priority: str  # "required", "recommended" or "suggested"
    sonames: tuple[str, ...]  # alternatives, best first


@dataclass(frozen=True)
class MissingLibrary:
    """A library an object needs that was not found (for the program `program`)."""

    program: str  # the input (program or library) whose closure needed it
    needed_by: str  # the object whose DT_NEEDED / PT_INTERP / shebang names it
    name: str  # the soname, interpreter path or program name not found

    def __str__(self) -> str:
        return f"{self.needed_by} needs {self.name} (for {self.program})"


@dataclass
class Closure:
    """The files a set of inputs needs.

    `files` lists every path to copy, symlinks included (each symlink and, separately, what it
    points to), sorted; `real` maps each listed path to its fully resolved path; `objects` maps
    each program/library path (as found) to the objects it loads directly.
    """

    files: list[str] = field(default_factory=list)
    symlinks: dict[str, str] = field(default_factory=dict)  # link path -> its target text
    real: dict[str, str] = field(default_factory=dict)
    objects: dict[str, list[str]] = field(default_factory=dict)
    missing: list[MissingLibrary] = field(default_factory=list)
    dlopen: list[DlopenNote] = field(default_factory=list)

    def real_files(self) -> list[str]:
        """The regular files (no symlinks) of the closure, sorted."""
        return sorted({p for p in self.files if p not in self.symlinks})


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


# ---------------------------------------------------------------------------------------------
# Paths inside a root


class _Missing(Exception):
    pass


class RootPaths:
    """Resolve paths inside a root directory as `chroot ROOT` would, with caches.

    Paths handed in and out are absolute paths inside the root ("/usr/lib/..."); `host()` gives
    the path on the real file system.
    """

    def __init__(self, root: str | os.PathLike[str] = "/") -> None:
        self.root = os.path.abspath(os.fspath(root))
        self._prefix = "" if self.root == "/" else self.root
        self._links: dict[str, str | None] = {}  # real path -> link target, None: not a link
        self._resolved: dict[str, tuple[str, tuple[str, ...]] | None] = {}
        self._listing: dict[str, frozenset[str]] = {}

    def host(self, path: str) -> str:
        return self._prefix + path

    def _readlink(self, path: str) -> str | None:
        """Target of `path` (whose parent is already real) or None; raises _Missing."""
        try:
            return self._links[path]
        except KeyError:
            pass
        try:
            target: str | None = os.readlink(self.host(path))
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                target = None
            else:
                raise _Missing(path) from exc
        self._links[path] = target
        return target

    def _walk(self, path: str, links: list[str], budget: list[int]) -> str:
        cur = "/"
        for name in path.split("/"):
            if name in ("", "."):
                continue
            if name == "..":
                cur = posixpath.dirname(cur)
                continue
            cand = posixpath.join(cur, name)
            target = self._readlink(cand)
            if target is None:
                cur = cand
                continue
            budget[0] -= 1
            if budget[0] < 0:
                raise _Missing(cand)
            links.append(cand)
            base = "/" if target.startswith("/") else cur
            cur = self._walk(posixpath.join(base, target), links, budget)
        return cur

    def resolve(self, path: str) -> tuple[str, tuple[str, ...]] | None:
        """(real path, symlinks met in order) for an existing path, or None."""
        try:
            return self._resolved[path]
        except KeyError:
            pass
        links: list[str] = []
        result: tuple[str, tuple[str, ...]] | None
        try:
            real = self._walk(path, links, [MAX_SYMLINKS])
            if real != "/" and self._readlink(real) is not None:  # pragma: no cover
                raise _Missing(real)
            result = (real, tuple(links))
        except _Missing:
            result = None
        self._resolved[path] = result
        return result

    def realpath(self, path: str) -> str | None:
        found = self.resolve(path)
        return None if found is None else found[0]

    def link_target(self, path: str) -> str | None:
        """The target text of a symlink whose parent directories are real paths."""
        try:
            return self._readlink(path)
        except _Missing:
            return None

    def listdir(self, directory: str) -> frozenset[str]:
        """Names in a directory (resolved inside root); empty when it does not exist."""
        real = self.realpath(directory)
        if real is None:
            return frozenset()
        try:
            return self._listing[real]
        except KeyError:
            pass
        try:
            names = frozenset(os.listdir(self.host(real)))
        except OSError:
            names = frozenset()
        self._listing[real] = names
        return names

    def exists(self, path: str) -> bool:
        directory, name = posixpath.split(path)
        return name in self.listdir(directory) and self.resolve(path) is not None

    def glob(self, pattern: str) -> list[str]:
        """Glob inside root; the results are paths inside root."""
        found = glob.glob(self.host(pattern))
        n = len(self._prefix)
        return sorted(p[n:] or "/" for p in found)


# ---------------------------------------------------------------------------------------------
# Reading ELF files


def _read_head(path: str, size: int = 64) -> bytes:
    with open(path, "rb") as f:
        return f.read(size)


def _parse_dlopen_notes(data: bytes, little: bool) -> list[tuple[str, str, str, tuple[str, ...]]]:
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


def read_elf_pyelftools(host_path: str) -> ElfInfo | None:
    """The reference reader, with pyelftools: same result as read_elf(), about 30 times slower
    (pyelftools parses every section header and the hash tables). Tests compare the two."""
    with open(host_path, "rb") as f:
        if f.read(4) != ELF_MAGIC:
            return None
        f.seek(0)
        try:
            elf = ELFFile(f)
            interp: str | None = None
            needed: list[str] = []
            rpath: list[str] = []
            runpath: list[str] = []
            soname: str | None = None
            flags_1 = 0
            seg: Any
            for seg in elf.iter_segments():
                ptype = seg["p_type"]
                if ptype == "PT_INTERP":
                    interp = seg.get_interp_name()
                elif ptype == "PT_DYNAMIC":
                    for tag in seg.iter_tags():
                        d_tag = tag.entry.d_tag
                        if d_tag == "DT_NEEDED":
                            needed.append(tag.needed)
                        elif d_tag == "DT_RPATH":
                            rpath.extend(p for p in tag.rpath.split(":"))
                        elif d_tag == "DT_RUNPATH":
                            runpath.extend(p for p in tag.runpath.split(":"))
                        elif d_tag == "DT_SONAME":
                            soname = tag.soname
                        elif d_tag == "DT_FLAGS_1":
                            flags_1 = tag.entry.d_val
            notes: list[tuple[str, str, str, tuple[str, ...]]] = []
            if elf["e_type"] != "ET_REL":
                section = elf.get_section_by_name(".note.dlopen")
                if section is not None and section["sh_type"] == "SHT_NOTE":
                    notes = _parse_dlopen_notes(section.data(), elf.little_endian)
            return ElfInfo(
                elf_class=elf.elfclass,
                machine=_machine_number(elf.header["e_machine"]),
                little_endian=elf.little_endian,
                elf_type=str(elf["e_type"]),
                interp=interp,
                needed=tuple(needed),
                # glibc ignores DT_RPATH when DT_RUNPATH is present.
                rpath=() if runpath else tuple(rpath),
                runpath=tuple(runpath),
                soname=soname,
                nodeflib=bool(flags_1 & DF_1_NODEFLIB),
                dlopen=tuple(notes),
            )
        except (ELFError, struct.error, ValueError, AssertionError) as exc:
            raise OSError(errno.ENOEXEC, f"malformed ELF file: {exc}") from exc


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
    return ElfInfo(
        elf_class=64 if is64 else 32,
        machine=machine,
        little_endian=head[5] == 1,
        elf_type=_ET_NAMES.get(e_type, str(e_type)),
        interp=interp,
        needed=tuple(needed),
        # glibc ignores DT_RPATH when DT_RUNPATH is present.
        rpath=() if runpath else tuple(rpath),
        runpath=tuple(runpath),
        soname=soname,
        nodeflib=bool(flags_1 & DF_1_NODEFLIB),
        dlopen=tuple(notes),
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
            return _parse_dlopen_notes(read_at(fields[4], fields[5]), little)
    return []


@cache
def _machine_number(name: str | int) -> int:
    if isinstance(name, int):
        return name
    from elftools.elf.enums import ENUM_E_MACHINE

    return int(ENUM_E_MACHINE.get(name, -1))


def _elf_kind(head: bytes) -> tuple[int, int] | None:
    """(class, machine) from the first 20 bytes, or None when not ELF."""
    if len(head) < 20 or head[:4] != ELF_MAGIC:
        return None
    elf_class = {1: 32, 2: 64}.get(head[4])
    if elf_class is None:
        return None
    fmt = "<H" if head[5] == 1 else ">H"
    return elf_class, struct.unpack_from(fmt, head, 18)[0]


def parse_shebang(head: bytes) -> list[str] | None:
    """Interpreter argv from a script's first line (`#!/bin/sh -e` -> ['/bin/sh', '-e'])."""
    if not head.startswith(b"#!"):
        return None
    line = head[2:].split(b"\n", 1)[0].decode("utf-8", "replace").strip()
    if not line:
        return None
    # Linux passes everything after the interpreter as one argument.
    interp, _, arg = line.replace("\t", " ").partition(" ")
    arg = arg.strip()
    return [interp, arg] if arg else [interp]


def env_program(args: Sequence[str]) -> str | None:
    """The program `/usr/bin/env` runs, from the shebang's argument string (handles -S)."""
    if not args:
        return None
    words = args[0].split()
    i = 0
    while i < len(words):
        word = words[i]
        if word in ("-S", "--split-string"):
            i += 1
            continue
        if word.startswith("-S"):  # "-Spython3 -u"
            return word[2:] or None
        if word in ("-u", "--unset", "-C", "--chdir"):
            i += 2
            continue
        if word.startswith("-") or "=" in word:
            i += 1
            continue
        return word
    return None


# ---------------------------------------------------------------------------------------------
# ld.so.conf


def read_ld_so_conf(paths: RootPaths, conf: str = "/etc/ld.so.conf") -> list[str]:
    """The directories of ld.so.conf (inside root), `include` globs expanded, in order."""
    dirs: list[str] = []
    seen_files: set[str] = set()

    def parse(conf_path: str) -> None:
        if conf_path in seen_files:
            return
        seen_files.add(conf_path)
        try:
            with open(paths.host(conf_path), encoding="utf-8", errors="replace") as f:
                lines = f.read().splitlines()
        except OSError:
            return
        for raw in lines:
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            word, *rest = line.split(None, 1)
            if word == "include":
                for pattern in rest[0].split() if rest else []:
                    if not pattern.startswith("/"):
                        pattern = posixpath.join(posixpath.dirname(conf_path), pattern)
                    for found in paths.glob(pattern):
                        parse(found)
                continue
            if word == "hwcap":  # obsolete syntax, ignored by ldconfig too
                continue
            # Old syntax allowed "dir=TYPE"; and entries may be separated by , : or spaces.
            for entry in line.replace(",", " ").replace(":", " ").split():
                entry = entry.split("=", 1)[0].rstrip("/") or "/"
                if entry.startswith("/") and entry not in dirs:
                    dirs.append(entry)

    parse(conf)
    return dirs


# ---------------------------------------------------------------------------------------------
# The resolver


@dataclass
class _Obj:
    """One object loaded into a simulated process."""

    path: str  # as found (what the loader opened)
    real: str
    info: ElfInfo
    loader: _Obj | None
    origin: str
    names: set[str]


class ElfResolver:
    """Resolve what programs and libraries need, on the host or inside a tree.

    root: the directory the paths live in ("/" for the host, or a rescue tree).
    hwcaps: glibc-hwcaps subdirectory names to search (best first); None means what this CPU
        supports (as the host's loader does). Use () for a tree meant to boot anywhere.
    legacy_hwcaps: also search glibc 2.36's legacy subdirectories (tls, x86_64).
    ld_so_conf: the configuration file (inside root) the loader's cache is built from.
    path: the directories PATH names (inside root), for `#!/usr/bin/env NAME` and find_program.
    """

    def __init__(
        self,
        root: str | os.PathLike[str] = "/",
        *,
        hwcaps: Sequence[str] | None = None,
        legacy_hwcaps: bool = True,
        ld_so_conf: str = "/etc/ld.so.conf",
        path: Sequence[str] = DEFAULT_PATH,
    ) -> None:
        self.paths = RootPaths(root)
        self.root = self.paths.root
        self.hwcaps = tuple(hwcaps) if hwcaps is not None else host_x86_hwcaps()
        self.legacy_hwcaps = legacy_hwcaps
        self.conf_dirs = read_ld_so_conf(self.paths, ld_so_conf)
        self.path = tuple(path)
        self._info: dict[str, ElfInfo | None] = {}
        self._heads: dict[str, bytes] = {}
        self._kinds: dict[str, tuple[int, int] | None] = {}
        self._search: dict[tuple[str, tuple[int, int], tuple[str, ...]], str | None] = {}
        self._subdirs: dict[tuple[int, int], tuple[str, ...]] = {}

    # -- per-file data, cached by real path ---------------------------------------------------

    def _head(self, real: str) -> bytes:
        try:
            return self._heads[real]
        except KeyError:
            pass
        head = _read_head(self.paths.host(real), 256)
        self._heads[real] = head
        return head

    def info(self, path: str) -> ElfInfo | None:
        """The ELF data of a path inside root (None when it is not ELF). Raises MkmediaError."""
        real = self._real_or_raise(path)
        return self._info_real(real)

    def _info_real(self, real: str) -> ElfInfo | None:
        try:
            return self._info[real]
        except KeyError:
            pass
        try:
            info = read_elf(self.paths.host(real))
        except OSError as exc:
            raise MkmediaError(
                f"Cannot read the ELF file {self.paths.host(real)}: {exc.strerror or exc}.",
                hint="Check that the file is a complete, readable program or library.",
            ) from exc
        self._info[real] = info
        return info

    def _kind(self, real: str) -> tuple[int, int] | None:
        """(class, machine) of a candidate library, None when it is not a usable ELF file."""
        try:
            return self._kinds[real]
        except KeyError:
            pass
        try:
            with open(self.paths.host(real), "rb") as f:
                kind = _elf_kind(f.read(20))
        except OSError:
            kind = None
        self._kinds[real] = kind
        return kind

    def _real_or_raise(self, path: str) -> str:
        if not path.startswith("/"):
            raise MkmediaError(f"The path {path!r} is not absolute; give the full path.")
        real = self.paths.realpath(path)
        where = f" in {self.root}" if self.root != "/" else ""
        if real is None:
            raise MissingError(
                f"The file {path}{where} does not exist (or a symlink on its way is dangling).",
                hint="Check the program and library lists of the recipe.",
            )
        host = self.paths.host(real)
        if not os.access(host, os.R_OK) or os.path.isdir(host):
            raise MkmediaError(
                f"The file {path}{where} is not a readable file.",
                hint="Check its permissions, or remove it from the recipe.",
            )
        return real

    # -- search order -------------------------------------------------------------------------

    def _layout(self, kind: tuple[int, int]) -> MachineLayout | None:
        return _LAYOUTS.get(kind)

    def subdirs(self, kind: tuple[int, int]) -> tuple[str, ...]:
        """Subdirectories tried below every search directory, in order ("" = the dir itself)."""
        try:
            return self._subdirs[kind]
        except KeyError:
            pass
        subs: list[str] = []
        layout = self._layout(kind)
        if kind == (64, EM_X86_64):
            subs.extend(f"glibc-hwcaps/{h}" for h in self.hwcaps)
        if self.legacy_hwcaps and layout is not None:
            # glibc 2.36: every subset of (tls, platform, hwcap), largest first.
            parts = ["tls", layout.platform, layout.legacy_hwcap]
            for mask in range(7, 0, -1):
                chosen = [p for i, p in enumerate(parts) if mask & (4 >> i) and p]
                if len(chosen) == bin(mask).count("1"):
                    sub = "/".join(chosen)
                    if sub not in subs:
                        subs.append(sub)
        subs.append("")
        self._subdirs[kind] = tuple(subs)
        return self._subdirs[kind]

    def system_dirs(self, kind: tuple[int, int]) -> tuple[str, ...]:
        """The loader's built-in directories for an ELF class/machine."""
        layout = self._layout(kind)
        if layout is not None and self.paths.realpath(f"/usr/lib/{layout.triplet}") is not None:
            t = layout.triplet
            return (f"/lib/{t}", f"/usr/lib/{t}", "/lib", "/usr/lib")
        if kind[0] == 64:
            return ("/lib64", "/usr/lib64")
        return ("/lib", "/usr/lib")

    def _expand(self, entry: str, origin: str, kind: tuple[int, int]) -> str | None:
        layout = self._layout(kind)
        lib = f"lib/{layout.triplet}" if layout else ("lib64" if kind[0] == 64 else "lib")
        platform = layout.platform if layout else ""
        out = entry
        for token, value in (("ORIGIN", origin), ("LIB", lib), ("PLATFORM", platform)):
            out = out.replace("${" + token + "}", value).replace("$" + token, value)
        if "$" in out:
            return None  # an unknown token: the loader drops the entry
        if out == "":
            return None
        if not out.startswith("/"):
            # Relative entries are relative to the current directory: unknowable, skip.
            return None
        # Not normalised: ".." is resolved physically (after symlinks), as the kernel does.
        return out.rstrip("/") or "/"

    def _find_in(self, name: str, dirs: Iterable[str], kind: tuple[int, int]) -> str | None:
        subs = self.subdirs(kind)
        for directory in dirs:
            for sub in subs:
                d = posixpath.join(directory, sub) if sub else directory
                if name not in self.paths.listdir(d):
                    continue
                cand = posixpath.join(d, name)
                real = self.paths.realpath(cand)
                if real is not None and self._kind(real) == kind:
                    return cand
        return None

    def _find_cached(
        self, name: str, dirs: tuple[str, ...], kind: tuple[int, int], cache_filter: bool = False
    ) -> str | None:
        key = (name if not cache_filter else "\0" + name, kind, dirs)
        try:
            return self._search[key]
        except KeyError:
            pass
        found = self._find_in(name, dirs, kind)
        self._search[key] = found
        return found

    def search(
        self, name: str, loader: _Obj | None, main: _Obj | None, kind: tuple[int, int]
    ) -> str | None:
        """Where the loader finds `name` needed by `loader` (glibc's _dl_map_object order)."""
        if "/" in name:
            if not name.startswith("/"):
                return None
            real = self.paths.realpath(name)
            return name if real is not None else None
        # 1. DT_RPATH of the loader and its loaders up to the executable, unless RUNPATH.
        if loader is None or not loader.info.runpath:
            chain = loader
            seen_main = False
            while chain is not None:
                if chain.info.rpath:
                    dirs = self._expand_all(chain.info.rpath, chain.origin, kind)
                    found = self._find_cached(name, dirs, kind)
                    if found:
                        return found
                seen_main = seen_main or chain is main
                chain = chain.loader
            if main is not None and not seen_main and main.info.rpath:
                dirs = self._expand_all(main.info.rpath, main.origin, kind)
                found = self._find_cached(name, dirs, kind)
                if found:
                    return found
        # 2. (LD_LIBRARY_PATH is not modelled: the rescue system does not set it.)
        # 3. DT_RUNPATH of the loader only.
        if loader is not None and loader.info.runpath:
            dirs = self._expand_all(loader.info.runpath, loader.origin, kind)
            found = self._find_cached(name, dirs, kind)
            if found:
                return found
        ref = loader if loader is not None else main
        if ref is not None and ref.info.nodeflib:
            return None
        # 4. ld.so.cache, which ldconfig builds from ld.so.conf and the system directories; it
        # only holds names that start with "lib" or "ld-" and contain ".so".
        if (name.startswith(("lib", "ld-"))) and ".so" in name:
            found = self._find_cached(name, self._cache_dirs(kind), kind, cache_filter=True)
            if found:
                return found
        # 5. The built-in system directories.
        return self._find_cached(name, self.system_dirs(kind), kind)

    def _cache_dirs(self, kind: tuple[int, int]) -> tuple[str, ...]:
        dirs = list(self.conf_dirs)
        for d in self.system_dirs(kind):
            if d not in dirs:
                dirs.append(d)
        return tuple(dirs)

    def _expand_all(
        self, entries: Sequence[str], origin: str, kind: tuple[int, int]
    ) -> tuple[str, ...]:
        out: list[str] = []
        for e in entries:
            x = self._expand(e, origin, kind)
            if x is not None and x not in out:
                out.append(x)
        return tuple(out)

    # -- programs and scripts -----------------------------------------------------------------

    def find_program(self, name: str) -> str | None:
        """A program name looked up on PATH (inside root), or an absolute path that exists."""
        if "/" in name:
            return name if name.startswith("/") and self.paths.realpath(name) else None
        for directory in self.path:
            if name in self.paths.listdir(directory):
                cand = posixpath.join(directory, name)
                real = self.paths.realpath(cand)
                if real is not None:
                    host = self.paths.host(real)
                    if os.path.isfile(host) and os.access(host, os.X_OK):
                        return cand
        return None

    def find_libraries(
        self, patterns: Iterable[str], *, elf_class: int = 64, machine: int = EM_X86_64
    ) -> tuple[list[str], list[str]]:
        """Resolve library names or globs to paths, as dlopen() by name would find them.

        "libnss_files.so.2" is looked up in ld.so.conf's and the system's directories (best
        hwcaps first); "libnss_*.so.2" matches file names there; an absolute path or glob is
        taken inside root. Returns (paths found, patterns that matched nothing).
        """
        kind = (elf_class, machine)
        found: list[str] = []
        unmatched: list[str] = []
        for pattern in patterns:
            hits: list[str] = []
            if pattern.startswith("/"):
                hits = [p for p in self.paths.glob(pattern) if os.path.isfile(self.paths.host(p))]
            elif any(c in pattern for c in "*?["):
                names: set[str] = set()
                for d in self._cache_dirs(kind):
                    names.update(
                        n for n in self.paths.listdir(d) if fnmatch.fnmatchcase(n, pattern)
                    )
                for n in sorted(names):
                    hit = self._find_in(n, self._cache_dirs(kind), kind)
                    if hit and hit not in hits:
                        hits.append(hit)
            else:
                hit = self.search(pattern, None, None, kind)
                hits = [hit] if hit else []
            if not hits:
                unmatched.append(pattern)
            for h in hits:
                if h not in found:
                    found.append(h)
        return found, unmatched

    # -- the simulation -----------------------------------------------------------------------

    def load(self, program: str) -> tuple[list[_Obj], list[tuple[str, str]]]:
        """Simulate loading one ELF program (or library): the objects in load order and the
        (needed_by, name) pairs not found. The first object is `program` itself."""
        real = self._real_or_raise(program)
        info = self._info_real(real)
        if info is None:
            return [], []
        kind = info.kind
        main = _Obj(program, real, info, None, posixpath.dirname(real), {program})
        if info.soname:
            main.names.add(info.soname)
        objs = [main]
        by_real: dict[str, _Obj] = {real: main}
        by_name: dict[str, _Obj] = dict.fromkeys(main.names, main)
        missing: list[tuple[str, str]] = []
        missing_names: set[str] = set()
        if info.interp:
            ireal = self.paths.realpath(info.interp)
            iinfo = self._info_real(ireal) if ireal else None
            if ireal is None or iinfo is None:
                missing.append((program, info.interp))
            elif ireal not in by_real:
                rtld = _Obj(
                    info.interp, ireal, iinfo, None, posixpath.dirname(info.interp), {info.interp}
                )
                if iinfo.soname:
                    rtld.names.add(iinfo.soname)
                by_real[ireal] = rtld
                for n in rtld.names:
                    by_name.setdefault(n, rtld)
        queue = [main]
        i = 0
        while i < len(queue):
            obj = queue[i]
            i += 1
            for name in obj.info.needed:
                if name in by_name or name in missing_names:
                    continue
                path = self.search(name, obj, main, kind)
                lreal = self.paths.realpath(path) if path else None
                linfo = self._info_real(lreal) if lreal else None
                if path is None or lreal is None or linfo is None:
                    missing.append((obj.path, name))
                    missing_names.add(name)
                    continue
                same = by_real.get(lreal)
                if same is not None:
                    same.names.add(name)
                    by_name[name] = same
                    if same not in objs:  # the loader itself, now listed as a dependency
                        objs.append(same)
                    continue
                new = _Obj(path, lreal, linfo, obj, posixpath.dirname(path), {name, path})
                if linfo.soname:
                    new.names.add(linfo.soname)
                by_real[lreal] = new
                for n in new.names:
                    by_name.setdefault(n, new)
                objs.append(new)
                queue.append(new)
        # The loader is part of every dynamic program even when nothing names it.
        for o in by_real.values():
            if o not in objs:
                objs.append(o)
        return objs, missing

    def _script_deps(self, real: str) -> tuple[list[str], list[str]]:
        """(interpreter paths found, names not found) for a shebang script."""
        head = self._head(real)
        argv = parse_shebang(head)
        if argv is None:
            return [], []
        found: list[str] = []
        missing: list[str] = []
        interp = argv[0]
        if self.paths.realpath(interp) is None:
            return [], [interp]
        found.append(interp)
        if posixpath.basename(interp) == "env":
            prog = env_program(argv[1:])
            if prog:
                hit = self.find_program(prog)
                if hit is None:
                    missing.append(prog)
                else:
                    found.append(hit)
        return found, missing

    def closure(
        self,
        inputs: Iterable[str],
        *,
        dlopen_priorities: Collection[str] = (),
    ) -> Closure:
        """Everything the inputs (programs, libraries, scripts; paths inside root) need.

        Missing or unreadable inputs raise MkmediaError; libraries that cannot be found are
        reported in `Closure.missing`. With `dlopen_priorities` (e.g. {"required",
        "recommended"}), libraries named by `.note.dlopen` notes of those priorities are
        added (the first of each note's alternatives that is found), with their closure.
        """
        result = Closure()
        done: set[str] = set()
        files: set[str] = set()
        pending: deque[tuple[str, str, int]] = deque((p, p, 0) for p in inputs)
        notes_seen: set[tuple[str, str]] = set()
        while pending:
            path, program, depth = pending.popleft()
            if path in done:
                continue
            done.add(path)
            real = self._real_or_raise(path)
            self._add_path(path, result, files)
            info = self._info_real(real)
            if info is None:
                if depth > MAX_SHEBANG_DEPTH:
                    continue
                interps, not_found = self._script_deps(real)
                for name in not_found:
                    result.missing.append(MissingLibrary(program, path, name))
                pending.extend((p, program, depth + 1) for p in interps)
                if interps:
                    result.objects[path] = interps
                continue
            objs, lost = self.load(path)
            for needed_by, name in lost:
                result.missing.append(MissingLibrary(program, needed_by, name))
            for obj in objs:
                self._add_path(obj.path, result, files)
                if obj.path not in result.objects:
                    result.objects[obj.path] = []
            for obj in objs:
                done.add(obj.path)
                for note in obj.info.dlopen:
                    dl = DlopenNote(obj.path, note[0], note[1], note[2], note[3])
                    if (obj.path, note[0] + repr(note[3])) in notes_seen:
                        continue
                    notes_seen.add((obj.path, note[0] + repr(note[3])))
                    result.dlopen.append(dl)
                    if note[2] in dlopen_priorities:
                        for soname in note[3]:
                            hit = self.search(soname, obj, objs[0], obj.info.kind)
                            if hit:
                                pending.append((hit, program, depth))
                                break
                        else:
                            result.missing.append(
                                MissingLibrary(program, obj.path, " | ".join(note[3]))
                            )
            main = objs[0] if objs else None
            if main is not None:
                result.objects[main.path] = [o.path for o in objs[1:]]
        result.files = sorted(files)
        return result

    def _add_path(self, path: str, result: Closure, files: set[str]) -> None:
        """Add a path with every symlink on its way (and their targets)."""
        if path in result.real:
            return
        found = self.paths.resolve(path)
        if found is None:
            return
        real, links = found
        result.real[path] = real
        files.add(real)
        for link in links:
            if link not in result.symlinks:
                target = self.paths.link_target(link)
                if target is not None:
                    result.symlinks[link] = target
            files.add(link)
            result.real.setdefault(link, self.paths.realpath(link) or link)

    def chain(self, path: str) -> list[str]:
        """The symlinks on the way to `path` and the real file, in order."""
        found = self.paths.resolve(path)
        if found is None:
            raise MissingError(f"The path {path} does not exist in {self.root}.")
        return [*found[1], found[0]]

    def libraries_of(self, program: str) -> tuple[list[str], list[tuple[str, str]]]:
        """What `ldd` would print for one program: the paths (as found) of every object loaded
        besides the program itself (the loader included), and the (needed_by, name) not found."""
        objs, missing = self.load(program)
        return [o.path for o in objs[1:]], missing


def resolve_closure(
    inputs: Iterable[str],
    *,
    root: str | os.PathLike[str] = "/",
    dlopen_priorities: Collection[str] = (),
    hwcaps: Sequence[str] | None = None,
) -> Closure:
    """Shortcut: the closure of `inputs` with a fresh resolver."""
    return ElfResolver(root, hwcaps=hwcaps).closure(inputs, dlopen_priorities=dlopen_priorities)


def is_elf(host_path: str) -> bool:
    """True when the file starts with the ELF magic (unreadable files raise OSError)."""
    with open(host_path, "rb") as f:
        return f.read(4) == ELF_MAGIC
