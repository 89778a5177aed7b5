"""Stopped runs leave nothing behind: SIGTERM cleans up like Ctrl-C, and what a SIGKILLed run
left is removed by the next run. Real `mkmedia build` processes, stopped in a rootfs hook."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from mkmedia.session.lock import process_start_ticks
from rescue_runtime.errors import EXIT_TERMINATED
from tests.unit.test_cli import REPO

pytestmark = pytest.mark.integration

# The hook tells the test which run it is in, then waits (exec: no shell stays behind).
WAIT_HOOK = """#!/bin/sh
echo "$$ $MKMEDIA_BUILD_DIR" > "{marker}.partial"
mv "{marker}.partial" "{marker}"
exec sleep 600
"""


@dataclass
class Run:
    proc: subprocess.Popen[bytes]
    stderr: Path
    hook_pid: int
    build_dir: Path

    def error_text(self) -> str:
        return self.stderr.read_text(errors="replace")


def configure(tmp_path: Path) -> Path:
    config_dir = tmp_path / "etc-mkmedia"
    hook = config_dir / "hooks.d/rootfs/pre/10-wait"
    hook.parent.mkdir(parents=True)
    hook.write_text(WAIT_HOOK.format(marker=tmp_path / "marker"))
    hook.chmod(0o755)
    (config_dir / "local.yaml").write_text(
        f"OUTPUT_URL: file://{tmp_path / 'out'}\nTMPDIR: {tmp_path / 'tmp'}\n"
        f"LAYOUT_DIR: {tmp_path / 'layout'}\n"
    )
    return config_dir


def start(tmp_path: Path, name: str) -> Run:
    """Start a build and wait until it stands in the rootfs hook."""
    marker = tmp_path / "marker"
    marker.unlink(missing_ok=True)
    stderr = tmp_path / f"{name}.stderr"
    argv = [sys.executable, "-m", "mkmedia", "build", "-c", str(tmp_path / "etc-mkmedia")]
    argv += ["--log-file", str(tmp_path / f"{name}.log")]
    env = dict(os.environ, MKMEDIA_LOCK_FILE=str(tmp_path / "lock"))
    with open(stderr, "wb") as err:
        proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.monotonic() + 600  # a guard against a hang, not a speed check
    while not marker.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            pytest.fail(f"the build never reached its rootfs hook:\n{stderr.read_text()}")
        time.sleep(0.1)
    pid, build_dir = marker.read_text().split()
    return Run(proc, stderr, int(pid), Path(build_dir))


def test_sigterm_removes_the_build_directory_and_releases_the_lock(tmp_path: Path) -> None:
    configure(tmp_path)
    run = start(tmp_path, "first")
    assert run.build_dir.is_dir() and run.build_dir.parent == tmp_path / "tmp"
    assert f"pid={run.proc.pid}\n" in (tmp_path / "lock").read_text()
    run.proc.send_signal(signal.SIGTERM)
    assert run.proc.wait(timeout=300) == EXIT_TERMINATED
    text = run.error_text()
    assert "mkmedia: error: stopped by SIGTERM" in text and "Traceback" not in text
    assert not run.build_dir.exists()
    assert list((tmp_path / "tmp").iterdir()) == []
    assert (tmp_path / "lock").read_text() == "", "the lock was released"
    assert process_start_ticks(run.hook_pid) is None, "the hook's process was stopped too"
    assert "stopped by SIGTERM" in (tmp_path / "first.log").read_text()


def test_next_run_removes_what_a_killed_run_left(tmp_path: Path) -> None:
    configure(tmp_path)
    killed = start(tmp_path, "killed")
    killed.proc.kill()
    killed.proc.wait()
    os.kill(killed.hook_pid, signal.SIGKILL)  # its hook outlived it (nobody killed it)
    assert killed.build_dir.is_dir(), "SIGKILL runs no clean-up"
    kept = tmp_path / "tmp" / "kept-by-hand"
    kept.mkdir()

    second = start(tmp_path, "second")
    try:
        assert not killed.build_dir.exists()
        text = second.error_text()
        assert f"removing the build directory {killed.build_dir} left by mkmedia " in text
        assert f"pid {killed.proc.pid} on " in text
        assert f"took over the lock {tmp_path / 'lock'} left by mkmedia pid {killed.proc.pid}" in (
            text
        )
        assert second.build_dir.is_dir() and kept.is_dir()
    finally:
        second.proc.send_signal(signal.SIGTERM)
        assert second.proc.wait(timeout=300) == EXIT_TERMINATED
    assert sorted(p.name for p in (tmp_path / "tmp").iterdir()) == ["kept-by-hand"]
