"""SIGTERM unwinds like Ctrl-C: every `finally` runs (build directory removed, lock released,
temporary files deleted) instead of the process vanishing mid-write."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from rescue_runtime.errors import EXIT_INTERRUPTED, EXIT_TERMINATED


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when SIGTERM arrives; `except KeyboardInterrupt` sees it."""


def exit_code(exc: KeyboardInterrupt) -> int:
    """143 (128 + SIGTERM) after SIGTERM, 130 (128 + SIGINT) after Ctrl-C."""
    return EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED


def stopped_by(exc: KeyboardInterrupt) -> str:
    return "stopped by SIGTERM" if isinstance(exc, Terminated) else "interrupted"


@contextmanager
def terminate_unwinds() -> Iterator[None]:
    """Within this block SIGTERM raises Terminated (once: a second SIGTERM does not cut the
    clean-up short; SIGKILL still does, and the next run reaps what is left)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set signal handlers
        return
    raised = False

    def handler(signum: int, frame: FrameType | None) -> None:
        nonlocal raised
        if not raised:
            raised = True
            raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
