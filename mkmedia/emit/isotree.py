"""An ISO9660 tree with Rock Ridge and Joliet names, written reproducibly with pycdlib.

Callers name files by their real (Rock Ridge) paths; this module derives the ISO9660 8.3 names
and the Joliet names itself, so every file is visible under all three name spaces. pycdlib reads
the clock for every date it records (volume descriptors, directory records, Rock Ridge TF) and
converts it with the local time zone; while building, its modules see a clock frozen at the
given epoch and reporting UTC, so the image depends only on its inputs and SOURCE_DATE_EPOCH.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import re
import stat
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, BinaryIO

import pycdlib
import pycdlib.dates
import pycdlib.headervd
import pycdlib.isohybrid
import pycdlib.pycdlib
import pycdlib.utils

from mkmedia.emit.labels import VolumeLabels
from rescue_runtime.errors import ConfigError, MkmediaError

# ISO9660 allows eight directory levels counting the root.
MAX_DEPTH = 7
JOLIET_MAX = 64
_D_CHARS = re.compile(r"[^A-Z0-9_]")
_JOLIET_BAD = re.compile(r"[*/:;?\\]")
_CLOCK_LOCK = threading.Lock()
_PATCHED_MODULES = (pycdlib.dates, pycdlib.headervd, pycdlib.pycdlib, pycdlib.utils)

WRITE_BLOCK = 1 << 20
_ZERO_BLOCK = bytes(WRITE_BLOCK)
FILE_MODE = 0o100444
DIR_MODE = 0o040555


@contextlib.contextmanager
def frozen_clock(epoch: int) -> Iterator[None]:
    """Make pycdlib see `epoch` as now and UTC as the local zone while the block runs."""
    fake = SimpleNamespace(
        time=lambda: float(epoch),
        localtime=lambda seconds=None: time.gmtime(epoch if seconds is None else seconds),
        gmtime=lambda seconds=None: time.gmtime(epoch if seconds is None else seconds),
        strftime=time.strftime,
        mktime=time.mktime,
    )
    with _CLOCK_LOCK:
        saved = [(module, module.time) for module in _PATCHED_MODULES]
        try:
            for module in _PATCHED_MODULES:
                module.time = fake  # type: ignore[attr-defined]
            yield
        finally:
            for module, original in saved:
                module.time = original  # type: ignore[attr-defined]


class SparseWriter:
    """A file wrapper that seeks over blocks of zeros never written before (leaving holes).

    Payloads such as preallocated backup files are mostly zeros; the holes save the disk writes
    and the space, and read back as zeros. Only ground beyond the high-water mark is skipped,
    so nothing written earlier is ever left stale.
    """

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._end = raw.seek(0, os.SEEK_END)
        raw.seek(0)

    def write(self, data: bytes) -> int:
        pos = self._raw.tell()
        size = len(data)
        if size >= 4096 and pos >= self._end and data == self._zeros(size):
            self._raw.seek(size, os.SEEK_CUR)
        else:
            self._raw.write(data)
        self._end = max(self._end, pos + size)
        return size

    @staticmethod
    def _zeros(size: int) -> bytes:
        return _ZERO_BLOCK if size == len(_ZERO_BLOCK) else bytes(size)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()

    def finish(self) -> None:
        """Give the file its full length (a hole at the very end is not a length)."""
        self._raw.truncate(self._end)
        self._raw.flush()


class _BiosOnlyHybrid(pycdlib.isohybrid.IsoHybrid):
    """pycdlib tells the hybrid record where the EFI entry lies whatever its efi flag says, and
    a record made without EFI refuses that; ours has nothing to update (hybrid.py adds the
    EFI partition)."""

    __slots__ = ()

    def update_efi(self, current_extent: int, sector_count: int, iso_size: int) -> None:
        pass


@dataclass
class _Dir:
    iso: str  # absolute ISO9660 path ("/" for the root)
    joliet: str
    iso_names: set[str] = field(default_factory=set)
    joliet_names: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class _File:
    path: str  # Rock Ridge path
    source: Path
    size: int
    mode: int


@dataclass(frozen=True)
class _Link:
    path: str
    target: str


@dataclass(frozen=True)
class BootEntry:
    """One El Torito entry: a file already in the tree, BIOS (no emulation) or UEFI."""

    path: str
    efi: bool = False
    boot_info_table: bool = False
    load_size: int | None = None  # 512-byte sectors loaded by the BIOS


def _iso_name(name: str, used: set[str], directory: bool) -> str:
    """An ISO9660 level 1 name (8.3, D-characters) unique among `used`."""
    base, dot, ext = name.upper().rpartition(".")
    if not dot or directory or not base:
        base, ext = name.upper(), ""
    base = _D_CHARS.sub("_", base)[:8] or "_"
    ext = _D_CHARS.sub("_", ext)[:3]
    candidate = base
    counter = 0
    while True:
        full = candidate if directory else f"{candidate}.{ext};1"
        if full not in used:
            used.add(full)
            return full
        counter += 1
        suffix = f"{counter:X}"
        candidate = base[: 8 - len(suffix) - 1] + "_" + suffix


def _joliet_name(name: str, used: set[str]) -> str:
    clean = _JOLIET_BAD.sub("_", name)
    candidate = clean[:JOLIET_MAX]
    counter = 0
    while candidate in used:
        counter += 1
        suffix = f"~{counter}"
        candidate = clean[: JOLIET_MAX - len(suffix)] + suffix
    used.add(candidate)
    return candidate


class IsoTree:
    def __init__(self) -> None:
        self._dirs: dict[str, _Dir] = {"/": _Dir("/", "/")}
        self._dir_order: list[str] = []
        self._files: dict[str, _File] = {}
        self._links: dict[str, _Link] = {}

    @staticmethod
    def _norm(path: str) -> str:
        if "/../" in f"/{path}/":
            raise ValueError(f"ISO path {path!r} leaves the tree")
        return posixpath.normpath("/" + path.lstrip("/")) if path.strip("/") else "/"

    def add_dir(self, path: str) -> None:
        path = self._norm(path)
        if path in self._dirs:
            return
        depth = path.count("/")
        if depth > MAX_DEPTH:
            raise ConfigError(
                f"The directory {path} is {depth} levels deep; an ISO9660 image allows at most "
                f"{MAX_DEPTH}.",
                hint="Put deep trees into an archive (e.g. the backup's tar file) instead.",
            )
        self._dirs[path] = _Dir("", "")  # placeholder: names are assigned in sorted order
        self._dir_order.append(path)
        self.add_dir(posixpath.dirname(path))

    def add_file(self, path: str, source: Path, mode: int = FILE_MODE) -> None:
        path = self._norm(path)
        self.add_dir(posixpath.dirname(path))
        self._files[path] = _File(path, source, source.stat().st_size, mode)

    def add_bytes(self, path: str, data: bytes, work_dir: Path) -> None:
        """A small generated file (kept in work_dir until the image is written)."""
        target = work_dir / "generated" / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        self.add_file(path, target)

    def add_symlink(self, path: str, target: str) -> None:
        path = self._norm(path)
        self.add_dir(posixpath.dirname(path))
        self._links[path] = _Link(path, target)

    def add_tree(self, path: str, source: Path) -> None:
        """Copy a directory tree in: files keep their permission bits, symlinks stay links."""
        base = self._norm(path)
        self.add_dir(base)
        top = os.fspath(source)
        for root, dirnames, filenames in os.walk(top):
            dirnames.sort()
            rel = os.path.relpath(root, top)
            dest_dir = base if rel == "." else posixpath.join(base, rel)
            for name in dirnames:
                full = os.path.join(root, name)
                if os.path.islink(full):
                    self.add_symlink(posixpath.join(dest_dir, name), os.readlink(full))
                else:
                    self.add_dir(posixpath.join(dest_dir, name))
            for name in sorted(filenames):
                full = os.path.join(root, name)
                dest = posixpath.join(dest_dir, name)
                info = os.lstat(full)
                if stat.S_ISLNK(info.st_mode):
                    self._links[dest] = _Link(dest, os.readlink(full))
                elif stat.S_ISREG(info.st_mode):
                    mode = stat.S_IFREG | stat.S_IMODE(info.st_mode)
                    self._files[dest] = _File(dest, Path(full), info.st_size, mode)
                else:
                    raise ConfigError(
                        f"{full} is neither a file, a directory nor a symbolic link; an ISO "
                        "payload can only hold those.",
                        hint="Remove it from the payload directory or archive the tree first.",
                    )

    @property
    def files(self) -> dict[str, _File]:
        return dict(self._files)

    # -- names -------------------------------------------------------------------------------
    def _assign_names(self) -> None:
        for path in sorted(self._dir_order, key=lambda p: (p.count("/"), p)):
            head, name = posixpath.split(path)
            parent = self._dirs[head]
            iso = _iso_name(name, parent.iso_names, directory=True)
            joliet = _joliet_name(name, parent.joliet_names)
            self._dirs[path] = _Dir(
                posixpath.join(parent.iso, iso), posixpath.join(parent.joliet, joliet)
            )

    def _leaf_names(self, path: str) -> tuple[str, str]:
        head, name = posixpath.split(path)
        parent = self._dirs[head]
        iso = _iso_name(name, parent.iso_names, directory=False)
        joliet = _joliet_name(name, parent.joliet_names)
        return posixpath.join(parent.iso, iso), posixpath.join(parent.joliet, joliet)

    # -- writing -----------------------------------------------------------------------------
    def write(
        self,
        out: BinaryIO,
        *,
        labels: VolumeLabels,
        epoch: int,
        boot: list[BootEntry],
        boot_catalog: str,
        hybrid: bool,
        mbr_id: int,
    ) -> dict[str, int]:
        """Master the image to `out`; return the first 2 KiB block of each boot file."""
        catalog = self._norm(boot_catalog)
        self.add_dir(posixpath.dirname(catalog))
        with frozen_clock(epoch):
            iso: Any = pycdlib.PyCdlib()
            # Level 3 allows files over 4 GiB (multi-extent); names stay 8.3 for old readers.
            iso.new(
                interchange_level=3,
                sys_ident="LINUX",
                vol_ident=labels.joliet,  # pycdlib writes it into both descriptors
                app_ident_str="MKMEDIA",
                joliet=3,
                rock_ridge="1.09",
            )
            # The primary descriptor holds 32 characters, Joliet's only 16.
            iso.pvd.volume_identifier = labels.iso9660.encode("ascii").ljust(32, b" ")
            self._assign_names()
            for path in sorted(self._dir_order, key=lambda p: (p.count("/"), p)):
                names_of = self._dirs[path]
                iso.add_directory(
                    names_of.iso,
                    rr_name=posixpath.basename(path),
                    joliet_path=names_of.joliet,
                    file_mode=DIR_MODE,
                )
            names: dict[str, str] = {}
            leaves = sorted([*self._files, *self._links, catalog])
            for path in leaves:
                iso_path, joliet_path = self._leaf_names(path)
                names[path] = iso_path
                rr_name = posixpath.basename(path)
                if path in self._files:
                    item = self._files[path]
                    iso.add_file(
                        str(item.source),
                        iso_path=iso_path,
                        rr_name=rr_name,
                        joliet_path=joliet_path,
                        file_mode=item.mode,
                    )
                elif path in self._links:
                    iso.add_symlink(
                        iso_path, rr_symlink_name=rr_name, rr_path=self._links[path].target
                    )
            for index, entry in enumerate(boot):
                if entry.path not in self._files:
                    raise MkmediaError(f"El Torito boot file {entry.path} is not in the ISO tree")
                iso.add_eltorito(
                    names[entry.path],
                    bootcatfile=names[catalog],
                    rr_bootcatname=posixpath.basename(catalog) if index == 0 else None,
                    joliet_bootcatfile=None,
                    boot_load_size=entry.load_size,
                    boot_info_table=entry.boot_info_table,
                    efi=entry.efi,
                    media_name="noemul",
                )
            if hybrid:
                # BIOS part only: hybrid.py adds the EFI partition (pycdlib's GPT is broken)
                iso.add_isohybrid(efi=False, part_type=0, mbr_id=mbr_id)
                iso.isohybrid_mbr.__class__ = _BiosOnlyHybrid
            sparse = SparseWriter(out)
            iso.write_fp(sparse, blocksize=WRITE_BLOCK)
            sparse.finish()
            blocks = {
                entry.path: int(iso.get_record(iso_path=names[entry.path]).extent_location())
                for entry in boot
            }
            iso.close()
        return blocks
