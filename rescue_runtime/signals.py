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


class _State:
    raised = False  # Terminated was raised once: later SIGTERMs do not cut the clean-up short
    shielded = 0  # inside shielded(): the SIGTERM waits for the block's end
    pending = False


def _handler(signum: int, frame: FrameType | None) -> None:
    if _State.raised:
        return
    if _State.shielded:
        _State.pending = True
        return
    _State.raised = True
    raise Terminated()


@contextmanager
def terminate_unwinds() -> Iterator[None]:
    """Within this block SIGTERM raises Terminated (once; SIGKILL still cuts everything short,
    and the next run reaps what is left)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set signal handlers
        return
    _State.raised = _State.pending = False
    previous = signal.signal(signal.SIGTERM, _handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def shielded() -> Iterator[None]:
    """A clean-up that SIGTERM must not cut in half (removing a build directory, whose owner
    record may go first): a SIGTERM that arrives inside is raised when the block ends."""
    _State.shielded += 1
    try:
        yield
    finally:
        _State.shielded -= 1
        if not _State.shielded and _State.pending and not _State.raised:
            _State.pending = False
            _State.raised = True
            raise Terminated()
