"""Find the programs of a recipe's program lists on the host."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from mkmedia.elf.resolver import RootPaths
from rescue_runtime.errors import MissingError

# Searched after PATH: a non-root PATH often lacks the sbin directories.
EXTRA_DIRS = ("/usr/sbin", "/sbin", "/usr/bin", "/bin")


@dataclass
class ProgramLookup:
    """Where each program was found, and which were not found."""

    found: dict[str, str] = field(default_factory=dict)  # name as listed -> path inside root
    missing_optional: list[str] = field(default_factory=list)

    @property
    def warnings(self) -> list[str]:
        return [
            f"The optional program {name!r} was not found; the rescue system will lack it."
            for name in self.missing_optional
        ]


def search_dirs(path_env: str | None = None) -> list[str]:
    """PATH's absolute directories followed by the sbin/bin directories, each once."""
    value = os.environ.get("PATH", "") if path_env is None else path_env
    dirs: list[str] = []
    for d in [*value.split(":"), *EXTRA_DIRS]:
        d = d.rstrip("/") or "/"
        if d.startswith("/") and d not in dirs:
            dirs.append(d)
    return dirs


def find_program(name: str, dirs: Sequence[str], paths: RootPaths) -> str | None:
    """A name looked up in `dirs`, or an absolute path; only executable files count."""
    if name.startswith("/"):
        candidates = [name]
    elif "/" in name:
        return None
    else:
        candidates = [f"{d}/{name}" for d in dirs]
    for cand in candidates:
        real = paths.realpath(cand)
        if real is None:
            continue
        host = paths.host(real)
        if os.path.isfile(host) and os.access(host, os.X_OK):
            return cand
    return None


def find_programs(
    programs: Iterable[str],
    required: Iterable[str],
    *,
    root: str | os.PathLike[str] = "/",
    path_env: str | None = None,
) -> ProgramLookup:
    """Look up optional `programs` and `required` ones (names or absolute paths).

    Missing required programs raise MissingError naming all of them; missing optional ones are
    returned in `missing_optional` (see `.warnings`).
    """
    paths = RootPaths(root)
    dirs = search_dirs(path_env)
    result = ProgramLookup()
    missing_required: list[str] = []
    required = list(dict.fromkeys(required))
    for name in required:
        hit = find_program(name, dirs, paths)
        if hit is None:
            missing_required.append(name)
        else:
            result.found[name] = hit
    if missing_required:
        names = ", ".join(missing_required)
        raise MissingError(
            f"The required program{'s' if len(missing_required) > 1 else ''} {names} "
            f"{'were' if len(missing_required) > 1 else 'was'} not found on this machine "
            f"(searched {':'.join(dirs)}).",
            hint="Install the packages that provide them, or remove them from REQUIRED_PROGS.",
        )
    for name in dict.fromkeys(programs):
        if name in result.found:
            continue
        hit = find_program(name, dirs, paths)
        if hit is None:
            result.missing_optional.append(name)
        else:
            result.found[name] = hit
    return result
