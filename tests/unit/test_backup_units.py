"""The parts of the NETFS backup that need no root: BACKUP_URL parsing, the pipeline helper
(real commands), what a layout's mounts and subvolumes turn into, the closing line."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from rescue_runtime.backup.netfs import Netfs, closing_line
from rescue_runtime.backup.progress import ProgressLine
from rescue_runtime.backup.sources import plan_backup
from rescue_runtime.errors import CommandError, ConfigError
from rescue_runtime.layout.model import BtrfsParams, Filesystem, Layout, Mount, Subvolume
from rescue_runtime.run import pipeline
from rescue_runtime.url import parse_url


def test_parse_url() -> None:
    url = parse_url("file:///srv/my%20backups/")
    assert (url.scheme, url.host, url.path) == ("file", "", "/srv/my backups")
    assert parse_url("NFS://nas/export").scheme == "nfs"
    for bad in ("srv/backup", "file://", "file:///a?b", "1x:///a", "file:///a/../b"):
        with pytest.raises(ConfigError):
            parse_url(bad)


def test_pipeline_streams_between_commands(tmp_path: Path) -> None:
    source = tmp_path / "in"
    source.write_bytes(b"b\na\nc\n" * 1000)
    out = tmp_path / "out"
    result = pipeline([["sort"], ["uniq", "-c"]], stdin_path=source, stdout_path=out)
    assert result.returncodes == [0, 0]
    assert out.read_text().split() == ["1000", "a", "1000", "b", "1000", "c"]


def test_pipeline_names_the_failing_command(tmp_path: Path) -> None:
    with pytest.raises(CommandError) as info:
        pipeline([["sh", "-c", "echo broken >&2; exit 3"], ["cat"]], stdout_path=tmp_path / "o")
    assert "exit status 3" in str(info.value) and "broken" in str(info.value)
    accepted = pipeline([["sh", "-c", "exit 1"], ["cat"]], ok_codes=[(0, 1), (0,)])
    assert accepted.returncodes == [1, 0]


def test_pipeline_stops_every_command_when_interrupted() -> None:
    pids: list[int] = []

    def interrupt(running: list[int]) -> None:
        pids.extend(running)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pipeline([["sleep", "30"], ["cat"]], on_tick=interrupt, tick=0.05)
    assert len(pids) == 2
    for pid in pids:  # killed and reaped: no process is left behind (a reused pid is another)
        cmdline = Path(f"/proc/{pid}/cmdline")
        assert not cmdline.exists() or b"sleep\x0030" not in cmdline.read_bytes()


def _btrfs_layout(top: Path) -> Layout:
    """Debian-style btrfs: @ on /, @home on /home, @/srv/data and @home/u/cache unmounted."""
    for path in ("srv/data", "home/u/cache"):
        (top / path).mkdir(parents=True)
    subvolumes = [
        Subvolume(256, "@"),
        Subvolume(257, "@home"),
        Subvolume(258, "@/srv/data"),
        Subvolume(259, "@home/u/cache"),
        Subvolume(260, "elsewhere/not-visible"),
    ]
    return Layout(
        filesystems=[
            Filesystem("/dev/vda2", "btrfs", btrfs=BtrfsParams(subvolumes=subvolumes)),
            Filesystem("/dev/vda1", "ext4"),
        ],
        mounts=[
            Mount("/", "/dev/vda2", "btrfs", fsroot="/@"),
            Mount("/home", "/dev/vda2", "btrfs", fsroot="/@home"),
            Mount("/boot", "/dev/vda1", "ext4"),
            Mount("/mnt/boot-again", "/dev/vda1", "ext4"),
            Mount("/data", "/dev/vdb1", "xfs", mounted=False),
            Mount("swap", "/dev/vda3", "swap"),
        ],
    )


def test_plan_covers_each_file_system_once_and_unmounted_subvolumes(tmp_path: Path) -> None:
    plan = plan_backup(_btrfs_layout(tmp_path), root=str(tmp_path), excludes=[("/x/*", "test")])
    assert [(s.path, s.kind) for s in plan.sources] == [
        ("/", "mount"),
        ("/boot", "mount"),
        ("/home", "mount"),
        ("/home/u/cache", "subvolume"),
        ("/srv/data", "subvolume"),
    ]
    assert [s.member for s in plan.sources][:2] == [".", "./boot"]
    reasons = {e.pattern: e.reason for e in plan.exclusions}
    assert "second mount" in reasons["/mnt/boot-again"]
    assert "not mounted" in reasons["/data"]
    assert reasons["/x/*"] == "test" and "/tmp/*" in reasons
    assert "under no mount point" in reasons["btrfs subvolume elsewhere/not-visible on /dev/vda2"]


def test_progress_line_without_a_terminal() -> None:
    stream = io.StringIO()
    show = ProgressLine("backup", stream=stream, every=0.0)
    show(512 * 1024**2, 1024**3)
    show(1024**3, 0)
    show.close()
    first, second = stream.getvalue().splitlines()
    assert first.startswith("  backup: 512.0 MiB of ~1.00 GiB (50%), ") and "MiB/s" in first
    assert second.startswith("  backup: 1.00 GiB, ")


def test_rescue_programs_follow_the_url() -> None:
    assert {"tar", "zstd", "mount"} <= set(Netfs.programs_for("file:///srv/b"))
    assert "sshfs" not in Netfs.programs_for("iso:///backup")
    assert "sshfs" in Netfs.programs_for("sshfs://nas/srv/b")


def test_closing_line() -> None:
    line = closing_line(
        {"files": 12, "bytes": 3 * 1024**3, "seconds": 10.0, "url": "file:///srv/b"}
    )
    assert line == "Backed up 12 files, 3.00 GiB in 10.0 s (307 MiB/s) to file:///srv/b"
