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

import fnmatch
import os
import posixpath
from collections import deque
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field

from mkmedia.elf.reader import EM_X86_64, ElfInfo, read_elf, read_head
from mkmedia.elf.scripts import MAX_SHEBANG_DEPTH, script_needs
from mkmedia.elf.searchpath import LoadedObject, SearchPath, host_x86_hwcaps, read_ld_so_conf
from mkmedia.rootpaths import RootPaths
from rescue_runtime.errors import MissingError, MkmediaError
from rescue_runtime.run import SYSTEM_PATH


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


class ElfResolver:
    """Resolve what programs and libraries need, on the host or inside a tree.

    root: the directory the paths live in ("/" for the host, or a rescue tree).
    hwcaps: glibc-hwcaps subdirectory names to search (best first); None means what this CPU
        supports (as the host's loader does). Use () for a tree meant to boot anywhere.
    legacy_hwcaps: also search glibc 2.36's legacy subdirectories (tls, x86_64).
    ld_so_conf: the configuration file (inside root) the loader's cache is built from.
    path: the directories PATH names (inside root), for `#!/usr/bin/env NAME`.
    """

    def __init__(
        self,
        root: str | os.PathLike[str] = "/",
        *,
        hwcaps: Sequence[str] | None = None,
        legacy_hwcaps: bool = True,
        ld_so_conf: str = "/etc/ld.so.conf",
        path: Sequence[str] = SYSTEM_PATH,
    ) -> None:
        self.paths = RootPaths(root)
        self.root = self.paths.root
        self.hwcaps = tuple(hwcaps) if hwcaps is not None else host_x86_hwcaps()
        self.legacy_hwcaps = legacy_hwcaps
        self.conf_dirs = read_ld_so_conf(self.paths, ld_so_conf)
        self.path = tuple(path)
        self.search_path = SearchPath(
            self.paths, hwcaps=self.hwcaps, legacy_hwcaps=legacy_hwcaps, conf_dirs=self.conf_dirs
        )
        self._info: dict[str, ElfInfo | None] = {}
        self._heads: dict[str, bytes] = {}

    # -- per-file data, cached by real path ---------------------------------------------------

    def _head(self, real: str) -> bytes:
        try:
            return self._heads[real]
        except KeyError:
            pass
        head = read_head(self.paths.host(real), 256)
        self._heads[real] = head
        return head

    def info(self, path: str) -> ElfInfo | None:
        """The ELF data of a path inside root (None when it is not ELF). Raises MkmediaError."""
        real = self._real_or_raise(path)
        return self._info_real(real)

    def _info_real(self, real: str) -> ElfInfo | None:
        if real in self._info:
            return self._info[real]
        try:
            info = read_elf(self.paths.host(real))
        except OSError as exc:
            raise MkmediaError(
                f"Cannot read the ELF file {self.paths.host(real)}: {exc.strerror or exc}.",
                hint="Check that the file is a complete, readable program or library.",
            ) from exc
        self._info[real] = info
        return info

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

    # -- libraries and scripts ---------------------------------------------------------------

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
                for d in self.search_path.cache_dirs(kind):
                    names.update(
                        n for n in self.paths.listdir(d) if fnmatch.fnmatchcase(n, pattern)
                    )
                for n in sorted(names):
                    hit = self.search_path.find_in(n, self.search_path.cache_dirs(kind), kind)
                    if hit and hit not in hits:
                        hits.append(hit)
            else:
                hit = self.search_path.search(pattern, None, None, kind)
                hits = [hit] if hit else []
            if not hits:
                unmatched.append(pattern)
            for h in hits:
                if h not in found:
                    found.append(h)
        return found, unmatched

    def _script_deps(self, real: str) -> tuple[list[str], list[str]]:
        """(interpreter paths found, names not found) for a shebang script."""
        return script_needs(self._head(real), self.paths, self.path)

    # -- the simulation -----------------------------------------------------------------------

    def load(self, program: str) -> tuple[list[LoadedObject], list[tuple[str, str]]]:
        """Simulate loading one ELF program (or library): the objects in load order and the
        (needed_by, name) pairs not found. The first object is `program` itself."""
        real = self._real_or_raise(program)
        info = self._info_real(real)
        if info is None:
            return [], []
        kind = info.kind
        main = LoadedObject(program, real, info, None, posixpath.dirname(real), {program})
        if info.soname:
            main.names.add(info.soname)
        objs = [main]
        by_real: dict[str, LoadedObject] = {real: main}
        by_name: dict[str, LoadedObject] = dict.fromkeys(main.names, main)
        missing: list[tuple[str, str]] = []
        missing_names: set[str] = set()
        if info.interp:
            ireal = self.paths.realpath(info.interp)
            iinfo = self._info_real(ireal) if ireal else None
            if ireal is None or iinfo is None:
                missing.append((program, info.interp))
            elif ireal not in by_real:
                rtld = LoadedObject(
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
                path = self.search_path.search(name, obj, main, kind)
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
                new = LoadedObject(path, lreal, linfo, obj, posixpath.dirname(path), {name, path})
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
                            hit = self.search_path.search(soname, obj, objs[0], obj.info.kind)
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
