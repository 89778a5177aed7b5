"""The reference ELF reader, with pyelftools: the same result as mkmedia.elf.reader.read_elf(),
about 30 times slower (pyelftools parses every section header and the hash tables). The tests
compare the two on the host's files."""

from __future__ import annotations

import errno
import struct
from functools import cache
from typing import Any

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from mkmedia.elf.reader import ELF_MAGIC, ElfInfo, parse_dlopen_notes


def read_elf_pyelftools(host_path: str) -> ElfInfo | None:
    """What pyelftools reads from one file, as an ElfInfo; None when it is not ELF."""
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
                    notes = parse_dlopen_notes(section.data(), elf.little_endian)
            return ElfInfo.of(
                elf.elfclass,
                _machine_number(elf.header["e_machine"]),
                elf.little_endian,
                str(elf["e_type"]),
                interp,
                (needed, rpath, runpath, soname, flags_1),
                notes,
            )
        except (ELFError, struct.error, ValueError, AssertionError) as exc:
            raise OSError(errno.ENOEXEC, f"malformed ELF file: {exc}") from exc


@cache
def _machine_number(name: str | int) -> int:
    if isinstance(name, int):
        return name
    from elftools.elf.enums import ENUM_E_MACHINE

    return int(ENUM_E_MACHINE.get(name, -1))
