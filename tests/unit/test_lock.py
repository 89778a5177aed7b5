"""The run lock between real processes: a busy lock names its holder, a stale one is taken over."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mkmedia.session.lock import Owner, RunLock, host_name, process_start_ticks
from rescue_runtime.errors import EXIT_LOCKED, LockError
from tests.unit.test_cli import REPO, mkmedia

# A second mkmedia process that takes the lock, says so, and waits for its stdin to close.
HOLDER = """
import sys
from pathlib import Path
from mkmedia.session.lock import RunLock
lock = RunLock(Path(sys.argv[1]))
lock.acquire()
print("locked", flush=True)
sys.stdin.read()
if sys.argv[2] == "release":
    lock.release()
"""

# Another one that takes the lock with the log on stderr, then prints the lock file.
TAKER = """
import logging, sys
from pathlib import Path
from mkmedia.session.lock import RunLock
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
lock = RunLock(Path(sys.argv[1]))
lock.acquire()
print(lock.path.read_text(), end="")
"""


def holder(path: Path, end: str = "exit") -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path), end],
        cwd=REPO,
        text=True,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def take(path: Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-c", TAKER, str(path)], cwd=REPO, text=True, capture_output=True
    )
    assert result.returncode == 0, result.stderr
    return result


def test_busy_lock_names_the_holding_process(tmp_path: Path, config_dir: Path) -> None:
    path = tmp_path / "lock"
    proc = holder(path)
    try:
        with pytest.raises(LockError) as err:
            RunLock(path).acquire()
        assert f"(pid {proc.pid} on {host_name()}, started 20" in str(err.value)
        log = str(tmp_path / "log")
        result = mkmedia("build", "-c", str(config_dir), "--log-file", log, tmp=tmp_path)
        assert result.returncode == EXIT_LOCKED
        assert f"Another mkmedia run (pid {proc.pid} on " in result.stderr
    finally:
        proc.communicate("")
    assert proc.returncode == 0


def test_stale_lock_of_a_killed_run_is_taken_over_and_logged(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    proc = holder(path)
    proc.kill()  # SIGKILL: no clean-up ran, the file still names it
    proc.communicate()
    assert f"pid={proc.pid}\n" in path.read_text()
    result = take(path)
    assert f"took over the lock {path} left by mkmedia pid {proc.pid} on " in result.stderr
    assert "(no longer running)" in result.stderr
    record = Owner.parse(result.stdout)
    assert record is not None and record.pid != proc.pid and record.host == host_name()


def test_cleanly_released_lock_is_taken_without_a_word(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    proc = holder(path, "release")
    proc.communicate("")
    assert path.read_text() == ""
    assert "took over" not in take(path).stderr


def test_owner_record_tells_dead_and_reused_pids_apart(tmp_path: Path) -> None:
    me = Owner.current()
    assert me.pid == os.getpid() and me.ticks == process_start_ticks(os.getpid())
    assert Owner.parse(me.to_text()) == me
    assert me.alive()
    assert me.ticks is not None
    reused = dataclasses.replace(me, ticks=me.ticks + 1)  # same pid, another process
    assert not reused.alive()
    assert not dataclasses.replace(me, boot="another-boot").alive()
    assert dataclasses.replace(me, host="elsewhere.example").alive(), "cannot tell: kept"
    code = "import os; print(os.getpid())"
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert not Owner(pid=int(child.stdout)).alive()
    assert Owner.parse("4242\n") == Owner(pid=4242), "a bare pid, as older versions wrote"
    assert Owner.parse("") is None and Owner.parse("pid=x\n") is None
