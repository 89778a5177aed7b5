"""Find the programs of a recipe's program lists on the host."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field

from mkmedia.rootpaths import RootPaths
from rescue_runtime.errors import MissingError
from rescue_runtime.run import search_path


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
    dirs = search_path(path_env)
    result = ProgramLookup()
    missing_required: list[str] = []
    required = list(dict.fromkeys(required))
    for name in required:
        hit = paths.which(name, dirs)
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
        hit = paths.which(name, dirs)
        if hit is None:
            result.missing_optional.append(name)
        else:
            result.found[name] = hit
    return result
