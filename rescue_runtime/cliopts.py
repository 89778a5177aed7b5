"""Common options that count wherever they stand: before the subcommand or after it.

argparse copies a subcommand's parsed values over the ones parsed before the subcommand, so an
option declared on both parsers with a default would silently drop what stood before it. Here
only the top parser (depth 0) has defaults; the subcommands get a copy (depth 1) whose defaults
are SUPPRESSed, so it sets a value only when given. Appending options (`--set`) get a
destination per depth, joined left to right by `merge()`. A nested action (`layout save`) may
take the depth-1 copy when its command (`layout`) has none.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any

# define(group, depth) adds the options to one group; it calls default() and dest() below.
Define = Callable[[argparse._ArgumentGroup, int], None]


def default(value: Any, depth: int) -> Any:
    """The option's default on the top parser; nothing (not even None) on subcommand copies."""
    return value if depth == 0 else argparse.SUPPRESS


def dest(name: str, depth: int) -> str:
    """The destination of an appending option at this depth (merged by CommonOptions.merge)."""
    return name if depth == 0 else f"{name}__{depth}"


class CommonOptions:
    """One definition of the common options, as parents for every parser level."""

    def __init__(self, define: Define, *, appended: Sequence[str] = ()) -> None:
        self._define = define
        self._appended = tuple(appended)
        self._parents: dict[int, argparse.ArgumentParser] = {}
        self._deepest = 0

    def parent(self, depth: int) -> argparse.ArgumentParser:
        """The parent parser to give a parser `depth` subcommands below the top one."""
        if depth not in self._parents:
            parser = argparse.ArgumentParser(add_help=False)
            self._define(parser.add_argument_group("common options"), depth)
            self._parents[depth] = parser
            self._deepest = max(self._deepest, depth)
        return self._parents[depth]

    def merge(self, args: argparse.Namespace) -> argparse.Namespace:
        """Join the appending options of every depth in command-line order (outer first)."""
        for name in self._appended:
            joined = list(getattr(args, name, None) or [])
            for depth in range(1, self._deepest + 1):
                joined.extend(vars(args).pop(dest(name, depth), None) or [])
            setattr(args, name, joined)
        return args
