"""Build directories carry their owner; only those of certainly dead runs are reaped."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mkmedia.session.lock import Owner, host_name
from mkmedia.workflow import OWNER_FILE, disown, make_build_dir, reap_build_dirs
from tests.unit.test_cli import REPO

# A real other process makes a build directory, prints it and waits for its stdin to close.
MAKER = """
import sys
from pathlib import Path
import pytest

from mkmedia.workflow import make_build_dir
print(make_build_dir(Path(sys.argv[1])), flush=True)
sys.stdin.read()
"""


def other_run(parent: Path) -> tuple[subprocess.Popen[str], Path]:
    proc = subprocess.Popen(
        [sys.executable, "-c", MAKER, str(parent)],
        cwd=REPO,
        text=True,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    return proc, Path(proc.stdout.readline().strip())


def test_build_dir_names_its_owner(tmp_path: Path) -> None:
    path = make_build_dir(tmp_path)
    owner = Owner.parse((path / OWNER_FILE).read_text())
    assert owner is not None and owner.pid == Owner.current().pid and owner.host == host_name()
    assert path.name.startswith(f"mkmedia.{owner.pid}.")
    assert [p.name for p in path.iterdir()] == [OWNER_FILE], "no partial record left"


def test_only_dead_runs_directories_are_reaped(tmp_path: Path) -> None:
    live_proc, live = other_run(tmp_path)
    dead_proc, dead = other_run(tmp_path)
    kept_proc, kept = other_run(tmp_path)
    disown(kept)  # --keep-build-dir: the user's now
    (dead / "rootfs").mkdir()
    dead_proc.kill()
    dead_proc.communicate()
    kept_proc.communicate("")
    mine = make_build_dir(tmp_path)
    elsewhere = tmp_path / "mkmedia.1.remote"
    elsewhere.mkdir()
    (elsewhere / OWNER_FILE).write_text("pid=1\nhost=another-host.example\n")
    unrelated = tmp_path / "mkmedia.notes"
    unrelated.mkdir()
    fifo = tmp_path / "mkmedia.fifo"  # a planted FIFO must not hang the reaper
    fifo.mkdir()
    os.mkfifo(fifo / OWNER_FILE)
    link = tmp_path / "mkmedia.link"
    link.symlink_to(dead)
    try:
        assert reap_build_dirs(tmp_path) == [dead]
        assert not dead.exists()
        assert all(p.exists() for p in (live, kept, mine, elsewhere, unrelated, fifo))
        assert reap_build_dirs(tmp_path) == []
    finally:
        live_proc.communicate("")
    assert reap_build_dirs(tmp_path) == [live], "its owner has ended since"
    assert reap_build_dirs(tmp_path / "missing") == []


def test_another_users_directory_is_never_reaped(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("making a directory of another user needs root")
    dead_proc, dead = other_run(tmp_path)
    dead_proc.kill()
    dead_proc.communicate()
    os.chown(dead, 65534, 65534)  # nobody's now: root's mkmedia leaves it alone
    assert reap_build_dirs(tmp_path) == []
    os.chown(dead, 0, 0)
    assert reap_build_dirs(tmp_path) == [dead]
