"""Assemble the rescue root tree: skeleton, COPY_AS_IS, programs and libraries with their
closure, loader cache, and the self-sufficiency check."""

from __future__ import annotations

import os
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mkmedia import __version__
from mkmedia.elf.resolver import Closure, DlopenNote, ElfResolver
from mkmedia.rootfs.check import TreeProblem, check_tree, problems_to_errors
from mkmedia.rootfs.copy import TreeCopier
from mkmedia.rootfs.copy_as_is import copy_as_is as copy_as_is_step
from mkmedia.rootfs.programs import find_programs
from mkmedia.rootfs.skeleton import (
    make_directories,
    run_ldconfig,
    write_config_files,
    write_ld_so_conf,
)

# system(3) and popen(3) run /bin/sh: without it, tools crash (parted segfaults when its
# `dmidecode` call through /bin/sh fails), so every tree carries it.
BASE_PROGRAMS = ("/bin/sh",)


@dataclass
class AssemblyResult:
    tree: Path
    programs: dict[str, str] = field(default_factory=dict)  # name -> path in the tree
    libraries: list[str] = field(default_factory=list)  # the LIBS entries resolved
    closure: Closure = field(default_factory=Closure)
    copy_as_is: list[str] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)
    dlopen_offers: list[DlopenNote] = field(default_factory=list)  # not followed, for recipes
    problems: list[TreeProblem] = field(default_factory=list)  # from the self-check
    warnings: list[str] = field(default_factory=list)
    files_copied: int = 0
    bytes_copied: int = 0


def assemble_tree(
    tree: Path,
    programs: Sequence[str],
    required_programs: Sequence[str],
    libraries: Sequence[str],
    copy_as_is: Sequence[str],
    exclude: Sequence[str],
    *,
    source_root: str | os.PathLike[str] = "/",
    dlopen_priorities: Collection[str] = ("required",),
    hwcaps: Sequence[str] = (),
    host_os_release: str = "/etc/os-release",
    base_programs: Sequence[str] = BASE_PROGRAMS,
) -> AssemblyResult:
    """Build the rescue root tree in `tree` (created if needed; may already hold files).

    programs / required_programs: names (looked up on PATH and the sbin/bin directories) or
        absolute paths; a missing required program raises MissingError, a missing optional one
        is a warning.
    libraries: extra libraries to carry (dlopen()ed ones: NSS modules, libgcc_s.so.1):
        sonames, file-name globs, or absolute paths/globs; their closure comes along.
    copy_as_is / exclude: see mkmedia.rootfs.copy_as_is.
    dlopen_priorities: `.note.dlopen` priorities followed automatically; the others are
        returned in `dlopen_offers`.
    hwcaps: glibc-hwcaps levels to pick libraries from; the default () takes the baseline
        libraries, which run on any CPU the rescue media may boot on.
    base_programs: required programs every rescue system needs (/bin/sh).

    Raises MissingError when a required program (or its libraries) cannot be provided.
    """
    tree = Path(tree).absolute()
    tree.mkdir(parents=True, exist_ok=True)
    result = AssemblyResult(tree=tree)
    required_programs = [*base_programs, *required_programs]
    lookup = find_programs(programs, required_programs, root=source_root)
    result.programs = dict(lookup.found)
    result.warnings.extend(lookup.warnings)

    copier = TreeCopier(tree, source_root)
    make_directories(copier)
    write_config_files(str(tree), host_os_release=host_os_release, version=__version__)

    cai = copy_as_is_step(copier, copy_as_is, exclude)
    result.copy_as_is, result.excluded = cai.copied, cai.excluded
    result.warnings.extend(cai.warnings)

    resolver = ElfResolver(source_root, hwcaps=hwcaps, legacy_hwcaps=bool(hwcaps))
    libs, unmatched = resolver.find_libraries(libraries)
    result.libraries = libs
    result.warnings.extend(f"The library {name} (LIBS) was not found." for name in unmatched)

    inputs = [*lookup.found.values(), *libs, *cai.elf_files]
    closure = resolver.closure(inputs, dlopen_priorities=dlopen_priorities)
    result.closure = closure
    result.dlopen_offers = [n for n in closure.dlopen if n.priority not in dlopen_priorities]
    required = {n: p for n, p in lookup.found.items() if n in set(required_programs)}
    optional = {n: p for n, p in lookup.found.items() if n not in required}
    # What the host itself cannot provide: fail for required programs before copying more.
    result.warnings.extend(problems_to_errors(closure.missing, required, optional))

    for path in closure.files:
        copier.copy_path(path)
    for path in lookup.found.values():
        copier.copy_path(path)  # the name as listed, with its own symlink chain

    write_ld_so_conf(str(tree), [*resolver.conf_dirs, *_library_dirs(closure)])
    run_ldconfig(str(tree))

    result.problems = check_tree(tree)
    result.warnings.extend(problems_to_errors(result.problems, required, optional, tree=tree))
    result.files_copied = copier.copied_files
    result.bytes_copied = copier.copied_bytes
    return result


def _library_dirs(closure: Closure) -> list[str]:
    """Directories the closure's libraries were found in (for the tree's ld.so.conf)."""
    dirs: list[str] = []
    for path in closure.objects:
        d = os.path.dirname(path)
        name = os.path.basename(path)
        # The loader is found by its PT_INTERP path, not through the cache.
        if ".so" in name and not name.startswith("ld-") and d not in dirs:
            dirs.append(d)
    return dirs
