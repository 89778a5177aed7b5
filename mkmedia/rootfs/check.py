"""Self-sufficiency: every ELF file in the tree finds every library it needs in the tree."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mkmedia.elf.resolver import ElfResolver, MissingLibrary
from rescue_runtime.errors import MissingError, MkmediaError


@dataclass(frozen=True)
class TreeProblem:
    """`file` (a path inside the tree) cannot run: `needed_by` needs `name`, not in the tree."""

    file: str
    needed_by: str
    name: str

    def __str__(self) -> str:
        via = "" if self.needed_by == self.file else f" (through {self.needed_by})"
        return f"{self.file} needs {self.name}{via}"


def elf_files(tree: str) -> list[str]:
    """Every regular file in the tree that starts with the ELF magic (paths inside the tree)."""
    out: list[str] = []
    for dirpath, dirnames, filenames in os.walk(tree):
        dirnames.sort()
        for name in sorted(filenames):
            host = os.path.join(dirpath, name)
            if os.path.islink(host) or not os.path.isfile(host):
                continue
            try:
                with open(host, "rb") as f:
                    if f.read(4) != b"\x7fELF":
                        continue
            except OSError as exc:
                raise MkmediaError(
                    f"Cannot read {host} in the rescue tree: {exc.strerror}."
                ) from exc
            out.append(host[len(tree) :])
    return out


def check_tree(
    tree: str | os.PathLike[str], *, resolver: ElfResolver | None = None
) -> list[TreeProblem]:
    """Resolve every dynamic ELF file of the tree inside the tree (its own ld.so.conf, its
    loader paths); return what is missing. Kernel modules (relocatable ELF) are skipped."""
    root = os.path.abspath(os.fspath(tree))
    resolver = resolver or ElfResolver(root)
    problems: list[TreeProblem] = []
    for path in elf_files(root):
        try:
            info = resolver.info(path)
        except MkmediaError as exc:  # a malformed ELF file cannot be loaded either
            problems.append(TreeProblem(path, path, f"a readable ELF file ({exc.message})"))
            continue
        if info is None or info.elf_type not in ("ET_EXEC", "ET_DYN") or not info.is_dynamic:
            continue
        _, missing = resolver.load(path)
        problems.extend(TreeProblem(path, by, name) for by, name in missing)
    return problems


def problems_to_errors(
    problems: Sequence[TreeProblem | MissingLibrary],
    required: Mapping[str, str],
    optional: Mapping[str, str],
    *,
    tree: str | os.PathLike[str] = "/",
) -> list[str]:
    """Raise MissingError when a required program is affected; return warnings otherwise.

    `required` and `optional` map program names to their paths inside `tree` (symlinks are
    resolved inside the tree to match the checked files).
    """
    root = os.path.abspath(os.fspath(tree))
    resolver = ElfResolver(root) if root != "/" else None

    def real(path: str) -> str:
        if resolver is None:
            return os.path.realpath(path)
        return resolver.paths.realpath(path) or path

    by_real_required = {real(p): n for n, p in required.items()}
    by_real_optional = {real(p): n for n, p in optional.items()}
    errors: list[str] = []
    warnings: list[str] = []
    for problem in problems:
        file = problem.file if isinstance(problem, TreeProblem) else problem.program
        via = "" if problem.needed_by == file else f" (needed by {problem.needed_by})"
        key = real(file)
        if key in by_real_required:
            errors.append(
                f"the required program {by_real_required[key]} ({file}) needs {problem.name}{via}"
            )
        elif key in by_real_optional:
            warnings.append(
                f"The optional program {by_real_optional[key]} ({file}) will not run in the "
                f"rescue system: {problem.name}{via} is missing."
            )
        else:
            warnings.append(f"{file} will not run in the rescue system: {problem.name}{via} "
                            "is missing.")  # fmt: skip
    if errors:
        raise MissingError(
            "The rescue tree is not self-sufficient: "
            + "; ".join(errors)
            + ", which "
            + ("is" if len(errors) == 1 else "are")
            + " not in the tree.",
            hint="Add the missing libraries to LIBS (or install them on this machine) and "
            "build again.",
        )
    return warnings
