"""Run commands inside `chroot TREE` to prove the programs start there."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from rescue_runtime.errors import CommandError
from rescue_runtime.run import SYSTEM_PATH, run

CHROOT_ENV = {"PATH": ":".join(SYSTEM_PATH), "LC_ALL": "C", "HOME": "/root"}


@dataclass(frozen=True)
class SmokeResult:
    command: tuple[str, ...]
    returncode: int  # -1 when it did not finish in time
    output: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def __str__(self) -> str:
        status = "ok" if self.ok else f"exit status {self.returncode}"
        return f"{' '.join(self.command)}: {status}\n{self.output.rstrip()}".rstrip()


def smoke_run(
    tree: str | os.PathLike[str], commands: Sequence[Sequence[str]], *, timeout: float = 60
) -> list[SmokeResult]:
    """Run each command in `chroot TREE` (as root); one result per command, in order."""
    results: list[SmokeResult] = []
    for command in commands:
        argv = ["chroot", os.fspath(tree), *command]
        try:
            res = run(argv, check=False, env=CHROOT_ENV, timeout=timeout)
            results.append(SmokeResult(tuple(command), res.returncode, res.stdout + res.stderr))
        except CommandError as exc:  # timed out
            results.append(SmokeResult(tuple(command), -1, str(exc)))
    return results


def failures(results: Sequence[SmokeResult]) -> list[SmokeResult]:
    return [r for r in results if not r.ok]
