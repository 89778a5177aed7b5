"""The one guard around a command line's `main`, for the builder's and the rescue system's.

An expected failure (MkmediaError) becomes its one-paragraph message and its exit code, with a
pointer to the log file when there is one; --debug re-raises it for the traceback. Ctrl-C and
SIGTERM (which unwinds like Ctrl-C, so clean-ups run) end with 130 and 143.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from rescue_runtime.errors import MkmediaError
from rescue_runtime.signals import exit_code, stopped_by, terminate_unwinds


def _to_stderr(text: str) -> None:
    print(f"mkmedia: error: {text}", file=sys.stderr)


@dataclass
class Guard:
    """The command sets `debug` and `log_file` once it has parsed its options."""

    report: Callable[[str], None] = _to_stderr  # how a message reaches the user
    debug: bool = False
    log_file: Path | None = None

    def run(self, body: Callable[[Guard], int]) -> int:
        with terminate_unwinds():
            try:
                return body(self)
            except MkmediaError as exc:
                if self.debug:
                    raise
                self.report(str(exc))
                if self.log_file:
                    print(
                        f"mkmedia: the log file {self.log_file} has the details.", file=sys.stderr
                    )
                return exc.exit_code
            except KeyboardInterrupt as exc:
                self.report(stopped_by(exc))
                return exit_code(exc)


Command = Callable[[argparse.Namespace], int]


def dispatch(commands: Mapping[str, Command], args: argparse.Namespace) -> int | None:
    """Run the command the options name; None when they name none (print the help then)."""
    command = commands.get(args.command) if args.command else None
    return None if command is None else command(args)
