"""SIGTERM (real signals, sent to this process) unwinds like Ctrl-C, once; shielded clean-up
finishes first."""

from __future__ import annotations

import os
import signal

import pytest

from rescue_runtime.errors import EXIT_INTERRUPTED, EXIT_TERMINATED
from rescue_runtime.signals import Terminated, exit_code, shielded, terminate_unwinds


def sigterm() -> None:
    os.kill(os.getpid(), signal.SIGTERM)  # the handler runs before the next line


def test_sigterm_raises_once_and_the_handler_is_restored() -> None:
    before = signal.getsignal(signal.SIGTERM)
    cleaned: list[str] = []
    with terminate_unwinds():
        with pytest.raises(Terminated) as err:
            try:
                sigterm()
                cleaned.append("not reached")
            finally:
                sigterm()  # a second one during the clean-up is not raised
                cleaned.append("finally")
        assert isinstance(err.value, KeyboardInterrupt)
        assert exit_code(err.value) == EXIT_TERMINATED
    assert cleaned == ["finally"]
    assert signal.getsignal(signal.SIGTERM) == before
    assert exit_code(KeyboardInterrupt()) == EXIT_INTERRUPTED


def test_shielded_clean_up_runs_to_its_end_first() -> None:
    steps: list[str] = []
    with terminate_unwinds(), pytest.raises(Terminated):
        with shielded():
            sigterm()
            steps.append("after the signal")
            with shielded():
                steps.append("nested")
            steps.append("still shielded")
        steps.append("not reached")
    assert steps == ["after the signal", "nested", "still shielded"]
    with terminate_unwinds(), shielded():
        steps.append("no signal")
    assert steps[-1] == "no signal"
