"""The root exception class for expected failures and the exit codes they map to.

Anything raised as an MkmediaError is shown to the user as one paragraph (no traceback unless
--debug); anything else is a bug and shows its traceback.
"""

from __future__ import annotations

# Exit codes, documented in `mkmedia --help`.
EXIT_OK = 0
EXIT_FAILURE = 1  # a workflow step failed / checklayout found a difference
EXIT_USAGE = 2  # bad command line
EXIT_CONFIG = 3  # a recipe or setting is wrong
EXIT_COMMAND = 4  # an external command failed
EXIT_LOCKED = 5  # another mkmedia run holds the lock
EXIT_MISSING = 6  # something the run needs is missing on this machine
EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_TERMINATED = 143  # 128 + SIGTERM

EXIT_CODES: dict[int, str] = {
    EXIT_OK: "success",
    EXIT_FAILURE: "a workflow step or check failed (checklayout: the layout changed)",
    EXIT_USAGE: "bad command line",
    EXIT_CONFIG: "a recipe, configuration file or --set value is wrong",
    EXIT_COMMAND: "an external command failed",
    EXIT_LOCKED: "another mkmedia run holds the lock",
    EXIT_MISSING: "a program, file or kernel the run needs is missing",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C); the build directory and the lock were cleaned up",
    EXIT_TERMINATED: "stopped by SIGTERM; the build directory and the lock were cleaned up",
}


class MkmediaError(Exception):
    """An expected failure: its message is a complete paragraph for the user."""

    exit_code = EXIT_FAILURE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} {self.hint}"
        return self.message


class ConfigError(MkmediaError):
    """A recipe, configuration layer or --set value is invalid."""

    exit_code = EXIT_CONFIG


class CommandError(MkmediaError):
    """An external command failed; the message names it, its status and its output's tail."""

    exit_code = EXIT_COMMAND


class LockError(MkmediaError):
    exit_code = EXIT_LOCKED


class MissingError(MkmediaError):
    """A program, library, kernel or file the run needs is not on this machine."""

    exit_code = EXIT_MISSING


class UsageError(MkmediaError):
    exit_code = EXIT_USAGE


class StepError(MkmediaError):
    """A workflow step or hook failed."""

    exit_code = EXIT_FAILURE
