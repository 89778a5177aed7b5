"""Shebang scripts: the interpreter a script names, and for `#!/usr/bin/env NAME` the program."""

from __future__ import annotations

import posixpath
from collections.abc import Sequence

from mkmedia.rootpaths import RootPaths

MAX_SHEBANG_DEPTH = 4  # Linux follows at most 4 nested interpreters (BINPRM_MAX_RECURSION)


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


def script_needs(
    head: bytes, paths: RootPaths, path_dirs: Sequence[str]
) -> tuple[list[str], list[str]]:
    """(interpreter paths found, names not found) for a script starting with `head`; an
    `env` interpreter's program is looked up in `path_dirs` (PATH inside root)."""
    argv = parse_shebang(head)
    if argv is None:
        return [], []
    found: list[str] = []
    missing: list[str] = []
    interp = argv[0]
    if paths.realpath(interp) is None:
        return [], [interp]
    found.append(interp)
    if posixpath.basename(interp) == "env":
        prog = env_program(argv[1:])
        if prog:
            hit = paths.which(prog, path_dirs)
            if hit is None:
                missing.append(prog)
            else:
                found.append(hit)
    return found, missing
