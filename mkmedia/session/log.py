"""Logging: every step and command with its output in the log file, short lines on the terminal."""

from __future__ import annotations

import logging
import os
import socket
import sys
from pathlib import Path

LOGGER = "mkmedia"


def default_log_path() -> Path:
    host = socket.gethostname().split(".")[0] or "localhost"
    if os.geteuid() == 0:
        return Path("/var/log/mkmedia") / f"mkmedia-{host}.log"
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "mkmedia" / f"mkmedia-{host}.log"


PROGRESS = "mkmedia.progress"


class _TerminalFilter(logging.Filter):
    """The terminal gets step lines, warnings and errors; module chatter goes to the log only."""

    def __init__(self, verbose: bool) -> None:
        super().__init__()
        self.verbose = verbose

    def filter(self, record: logging.LogRecord) -> bool:
        return self.verbose or record.levelno >= logging.WARNING or record.name == PROGRESS


class _TerminalFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.levelno >= logging.ERROR:
            return f"mkmedia: error: {text}"
        if record.levelno >= logging.WARNING:
            return f"mkmedia: warning: {text}"
        return text


def setup_logging(
    log_path: Path | None, *, verbose: bool = False, debug: bool = False
) -> Path | None:
    """Send everything to the log file and short lines to stderr; return the log path used."""
    logger = logging.getLogger(LOGGER)
    logger.setLevel(logging.DEBUG)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    logger.propagate = False
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.DEBUG if (debug or verbose) else logging.INFO)
    console.setFormatter(_TerminalFormatter())
    console.addFilter(_TerminalFilter(verbose or debug))
    logger.addHandler(console)
    if log_path is None:
        return None
    try:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(log_path, mode="w", encoding="utf-8")
    except OSError as exc:
        logger.warning(
            "cannot write the log file %s (%s); logging to the terminal only", log_path, exc
        )
        return None
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    logger.addHandler(handler)
    return log_path


def say(message: str) -> None:
    """A short progress line on the terminal (and in the log)."""
    logging.getLogger(PROGRESS).info(message)
