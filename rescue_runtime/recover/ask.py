"""Questions to the operator: each with a timeout and a safe default.

Unattended, no question is asked: the default is taken and logged, so a run without anyone at
the keyboard never waits. Interactive, a question that gets no answer within its timeout takes
its default too (ReaR's USER_INPUT_TIMEOUT); the defaults are chosen so that the timeout never
writes a disk the operator did not agree to.
"""

from __future__ import annotations

import logging
import select
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO

log = logging.getLogger("mkmedia.recover")

DEFAULT_TIMEOUT = 300.0


@dataclass
class Asker:
    unattended: bool
    timeout: float = DEFAULT_TIMEOUT
    stdin: TextIO | None = None
    stdout: TextIO | None = None

    def __call__(self, question: str, default: str) -> str:
        """Ask `question`; the answer, or `default` when unattended, on timeout or at EOF."""
        out = self.stdout or sys.stdout
        if self.unattended:
            log.info("question %r: unattended, answered %r", question, default)
            return default
        out.write(f"{question} [{default}] ")
        out.flush()
        answer = self._read_line()
        if answer is None:
            out.write(f"\n(no answer within {self.timeout:.0f} s: {default})\n")
            answer = default
        answer = answer.strip() or default
        log.info("question %r: answered %r", question, answer)
        return answer

    def choose(self, question: str, choices: Sequence[str], default: str) -> str:
        """One of `choices` (by its first letter or its whole word); asks again otherwise."""
        while True:
            answer = self(f"{question} ({'/'.join(choices)})", default).lower()
            for choice in choices:
                if answer in (choice, choice[0]):
                    return choice
            (self.stdout or sys.stdout).write(f"Please answer one of {', '.join(choices)}.\n")

    def _read_line(self) -> str | None:
        stream = self.stdin or sys.stdin
        try:
            ready, _, _ = select.select([stream], [], [], self.timeout)
        except (OSError, ValueError):  # not a selectable stream (a test's StringIO)
            ready = [stream]
        if not ready:
            return None
        line = stream.readline()
        return line if line else None
