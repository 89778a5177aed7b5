"""No QEMU outlives its test: a process that started a guest and is then killed with SIGKILL
(no atexit, no finally, as a CI time-out or an operator's kill -9 does it) takes its QEMU along."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.vm

STARTER = """
import sys, time
from mkmedia.qemu import Guest, Machine
guest = Guest(Machine(network=False), deadline=600, name="orphan-check").start()
print(guest._proc.pid, flush=True)
time.sleep(600)
"""


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_qemu_dies_with_a_killed_test_process(tmp_path: Path) -> None:
    starter = subprocess.Popen(
        [sys.executable, "-c", STARTER], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    qemu = -1
    try:
        assert starter.stdout is not None
        qemu = int(starter.stdout.readline())
        # setpriv sets the parent-death signal, then execs QEMU: kill the starter once that
        # has happened (a test dies long after its guest started, not within microseconds).
        for _ in range(200):
            if Path(f"/proc/{qemu}/comm").read_text().startswith("qemu-system"):
                break
            time.sleep(0.05)
        assert alive(qemu), "QEMU did not start"
        os.kill(starter.pid, signal.SIGKILL)
        starter.wait(timeout=30)
        for _ in range(100):
            if not alive(qemu):
                break
            time.sleep(0.1)
        assert not alive(qemu), f"QEMU {qemu} outlived the process that started it"
    finally:
        starter.kill()
        if qemu > 0:  # whatever happened, this test leaves no QEMU
            with contextlib.suppress(ProcessLookupError):
                os.kill(qemu, signal.SIGKILL)
