"""rescue_runtime.run: accepted exit codes, stdin from /dev/null, and failure messages that
say how a command ended (signal, 127, 126); the layout probe runs a tool once."""

from __future__ import annotations

from pathlib import Path

import pytest

from rescue_runtime.errors import CommandError
from rescue_runtime.layout.probe import SystemProbe
from rescue_runtime.run import pipeline, run, run_bytes


def script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return path


def test_ok_codes_decide_what_fails() -> None:
    assert run(["sh", "-c", "echo out; exit 1"], ok_codes=(0, 1)).stdout == "out\n"
    with pytest.raises(CommandError, match=r"failed with exit status 2 while testing"):
        run(["sh", "-c", "exit 2"], ok_codes=(0, 1), what="testing")
    assert run(["sh", "-c", "exit 2"], check=False).returncode == 2


def test_stdin_is_dev_null_unless_input_is_given() -> None:
    assert run(["readlink", "/proc/self/fd/0"]).stdout.strip() == "/dev/null"
    assert run_bytes(["readlink", "/proc/self/fd/0"]).strip() == b"/dev/null"
    assert run(["cat"], input="given\n").stdout == "given\n"


def test_death_by_signal_is_named() -> None:
    with pytest.raises(CommandError, match=r"was killed by SIGKILL \(9\)"):
        run(["sh", "-c", "kill -KILL $$"])
    with pytest.raises(CommandError, match=r"was killed by SIGTERM \(15\)"):
        run_bytes(["sh", "-c", "kill -TERM $$"])


def test_exit_127_and_126_are_explained(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match=r"exit status 127 \(a program it runs was not found"):
        run(["sh", "-c", "mkmedia-no-such-program-here"])
    plain = tmp_path / "plain"
    plain.write_text("echo hi\n")  # not executable
    with pytest.raises(CommandError, match=r"exit status 126 \(a program it runs could not be"):
        run(["sh", "-c", str(plain)])
    with pytest.raises(CommandError, match=r"`sh` was killed by SIGKILL \(9\)"):
        pipeline([["sh", "-c", "kill -KILL $$"]])


def test_probe_runs_a_tool_once_whatever_its_status(tmp_path: Path) -> None:
    count = tmp_path / "count"
    tool = script(tmp_path / "tool", f"echo run >> {count}; echo listed; exit 1")
    probe = SystemProbe()
    assert probe.tool([str(tool)], what="listing", ok_codes=(0, 1)) == "listed\n"
    assert count.read_text() == "run\n"
    with pytest.raises(CommandError, match="failed with exit status 1 while listing"):
        probe.tool([str(tool)], what="listing")
    assert count.read_text() == "run\nrun\n", "the failed tool was run again"
