"""Re-export of the one exception hierarchy shared by builder and rescue runtime."""

from rescue_runtime.errors import (
    EXIT_CODES,
    EXIT_COMMAND,
    EXIT_CONFIG,
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_LOCKED,
    EXIT_MISSING,
    EXIT_OK,
    EXIT_USAGE,
    CommandError,
    ConfigError,
    LockError,
    MissingError,
    MkmediaError,
    StepError,
    UsageError,
)

__all__ = [
    "EXIT_CODES",
    "EXIT_COMMAND",
    "EXIT_CONFIG",
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_LOCKED",
    "EXIT_MISSING",
    "EXIT_OK",
    "EXIT_USAGE",
    "CommandError",
    "ConfigError",
    "LockError",
    "MissingError",
    "MkmediaError",
    "StepError",
    "UsageError",
]
