"""Where glibc's loader looks for a library: DT_RPATH/DT_RUNPATH (with $ORIGIN, $LIB and
$PLATFORM), /etc/ld.so.conf (with its `include` globs), the default directories, and the
glibc-hwcaps and legacy hwcaps subdirectories below each, in the loader's order."""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from mkmedia.elf.reader import (
    EM_386,
    EM_AARCH64,
    EM_ARM,
    EM_PPC64,
    EM_RISCV,
    EM_S390,
    EM_X86_64,
    ElfInfo,
    elf_kind,
)
from mkmedia.rootpaths import RootPaths


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


@dataclass
class LoadedObject:
    """One object loaded into a simulated process."""

    path: str  # as found (what the loader opened)
    real: str
    info: ElfInfo
    loader: LoadedObject | None
    origin: str
    names: set[str]


class SearchPath:
    """The loader's search order for one root, with caches.

    hwcaps: glibc-hwcaps subdirectory names to search, best first.
    legacy_hwcaps: also search glibc 2.36's legacy subdirectories (tls, x86_64).
    conf_dirs: the directories of ld.so.conf, which the loader's cache is built from.
    """

    def __init__(
        self,
        paths: RootPaths,
        *,
        hwcaps: Sequence[str],
        legacy_hwcaps: bool,
        conf_dirs: Sequence[str],
    ) -> None:
        self.paths = paths
        self.hwcaps = tuple(hwcaps)
        self.legacy_hwcaps = legacy_hwcaps
        self.conf_dirs = list(conf_dirs)
        self._kinds: dict[str, tuple[int, int] | None] = {}
        self._search: dict[tuple[str, tuple[int, int], tuple[str, ...]], str | None] = {}
        self._subdirs: dict[tuple[int, int], tuple[str, ...]] = {}

    def _kind(self, real: str) -> tuple[int, int] | None:
        """(class, machine) of a candidate library, None when it is not a usable ELF file."""
        try:
            return self._kinds[real]
        except KeyError:
            pass
        try:
            with open(self.paths.host(real), "rb") as f:
                kind = elf_kind(f.read(20))
        except OSError:
            kind = None
        self._kinds[real] = kind
        return kind

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

    def find_in(self, name: str, dirs: Iterable[str], kind: tuple[int, int]) -> str | None:
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
        found = self.find_in(name, dirs, kind)
        self._search[key] = found
        return found

    def search(
        self,
        name: str,
        loader: LoadedObject | None,
        main: LoadedObject | None,
        kind: tuple[int, int],
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
                    dirs = self.expand_all(chain.info.rpath, chain.origin, kind)
                    found = self._find_cached(name, dirs, kind)
                    if found:
                        return found
                seen_main = seen_main or chain is main
                chain = chain.loader
            if main is not None and not seen_main and main.info.rpath:
                dirs = self.expand_all(main.info.rpath, main.origin, kind)
                found = self._find_cached(name, dirs, kind)
                if found:
                    return found
        # 2. (LD_LIBRARY_PATH is not modelled: the rescue system does not set it.)
        # 3. DT_RUNPATH of the loader only.
        if loader is not None and loader.info.runpath:
            dirs = self.expand_all(loader.info.runpath, loader.origin, kind)
            found = self._find_cached(name, dirs, kind)
            if found:
                return found
        ref = loader if loader is not None else main
        if ref is not None and ref.info.nodeflib:
            return None
        # 4. ld.so.cache, which ldconfig builds from ld.so.conf and the system directories; it
        # only holds names that start with "lib" or "ld-" and contain ".so".
        if (name.startswith(("lib", "ld-"))) and ".so" in name:
            found = self._find_cached(name, self.cache_dirs(kind), kind, cache_filter=True)
            if found:
                return found
        # 5. The built-in system directories.
        return self._find_cached(name, self.system_dirs(kind), kind)

    def cache_dirs(self, kind: tuple[int, int]) -> tuple[str, ...]:
        dirs = list(self.conf_dirs)
        for d in self.system_dirs(kind):
            if d not in dirs:
                dirs.append(d)
        return tuple(dirs)

    def expand_all(
        self, entries: Sequence[str], origin: str, kind: tuple[int, int]
    ) -> tuple[str, ...]:
        out: list[str] = []
        for e in entries:
            x = self._expand(e, origin, kind)
            if x is not None and x not in out:
                out.append(x)
        return tuple(out)
