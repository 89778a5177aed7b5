"""BACKUP=NETFS with real tar and zstd on real file systems (loop devices): round trips with
content and metadata compared, exclusions, verify refusing damaged backups, a failed backup
leaving the previous one intact, nested btrfs subvolumes.

Needs root (loop devices, mknod, setcap, chown to unknown ids).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from rescue_runtime.backup import method_class
from rescue_runtime.backup.manifest import MANIFEST_NAME, BackupError
from rescue_runtime.backup.netfs import VOLUME_NAME, Netfs, extract_member
from rescue_runtime.backup.sources import BackupPlan, plan_backup
from rescue_runtime.errors import CommandError
from rescue_runtime.layout.capture import capture
from rescue_runtime.layout.model import Layout
from rescue_runtime.run import run, which
from tests.backupsource import quiet, rich_source
from tests.loopfs import BACKUP_TEST_MARKS, loop_filesystem
from tests.metadata import ODD_NAMES, differences, snapshot

pytestmark = BACKUP_TEST_MARKS


@pytest.fixture
def source(tmp_path: Path) -> Iterator[tuple[Path, Layout]]:
    """A rich tree on its own ext4 file system, and the layout captured for it."""
    with rich_source(tmp_path) as (mnt, _, device):
        (mnt / "tmp").mkdir()
        (mnt / "tmp" / "scratch").write_text("left out by default\n")
        (mnt / "cache").mkdir()
        (mnt / "cache" / "big.bin").write_bytes(b"x" * 1000)
        yield mnt, capture(str(mnt), devices=[device])


def backup_of(
    mnt: Path, layout: Layout, target: Path, *, url: str = "file:///x", keep_old: bool = False
) -> dict[str, object]:
    plan = plan_backup(layout, excludes=[("/cache/*", "BACKUP_PROG_EXCLUDE")])
    return Netfs.backup(
        plan, target, url=url, layout_sha256="0" * 64, keep_old=keep_old, progress=quiet
    )


def backed_up(source: tuple[Path, Layout], tmp_path: Path) -> tuple[Layout, Path, dict[str, bytes]]:
    """A first backup: the layout, its directory and the bytes of each of its files."""
    mnt, layout = source
    backup_dir = tmp_path / "backups" / "host"
    backup_of(mnt, layout, backup_dir)
    return layout, backup_dir, {p.name: p.read_bytes() for p in backup_dir.iterdir()}


def restored(tmp_path: Path, backup_dir: Path) -> Path:
    target = tmp_path / "restored"
    target.mkdir()
    Netfs.restore(backup_dir, target, progress=quiet)
    return target


def test_registered_and_urls_checked() -> None:
    assert method_class("NETFS") is Netfs
    Netfs.check_url("file:///srv/backup")
    Netfs.check_url("iso:///backup")
    Netfs.check_url("sshfs://backup@nas.example:2222/srv/backups")
    Netfs.check_url("tape:///dev/nst0")
    for bad, words in [
        ("", "needs BACKUP_URL"),
        ("/srv/backup", "no scheme"),
        ("http://x", "does not know"),
        ("tape:///dev/st0", "non-rewinding device /dev/nst0"),
        ("file://srv/backup", "names the host"),
        ("file:///srv/../etc", "'..'"),
        ("iso:///a/b", "one top-level directory"),
        ("::garbage::", "no scheme"),
        ("sshfs:///srv/backups", "names no server"),
        ("sshfs://backup:secret@nas/srv", "never goes into a setting"),
        ("sshfs://nas:99999/srv", "port"),
        ("cifs://nas/", "names no share"),
    ]:
        with pytest.raises(Exception) as info:
            Netfs.check_url(bad)
        assert words in str(info.value), (bad, str(info.value))


def test_file_round_trip_keeps_content_and_metadata(
    source: tuple[Path, Layout], tmp_path: Path
) -> None:
    mnt, layout = source
    before = snapshot(mnt, skip=("lost+found", "tmp/scratch", "cache/big.bin"))
    backup_dir = tmp_path / "backups" / "host"
    manifest = backup_of(mnt, layout, backup_dir)
    assert sorted(p.name for p in backup_dir.iterdir()) == [MANIFEST_NAME, VOLUME_NAME]
    written = json.loads((backup_dir / MANIFEST_NAME).read_text())
    assert written["files"] == manifest["files"] and written["files"] > 20
    assert written["volumes"][0]["size"] == (backup_dir / VOLUME_NAME).stat().st_size
    patterns = [e["pattern"] for e in written["exclusions"]]
    assert "/tmp/*" in patterns and "/cache/*" in patterns
    assert written["filesystems"][0]["path"] == "/" and written["filesystems"][0]["used_bytes"]
    assert "GNU tar" in written["tools"]["tar"] and "Zstandard" in written["tools"]["zstd"]

    target = restored(tmp_path, backup_dir)
    after = snapshot(target, skip=("lost+found",))
    assert differences(before, after) == []
    # The checker itself sees what matters (a checker that compares nothing passes anything).
    assert after["sparse.img"]["sparse"] is True
    assert "system.posix_acl_default" in after["b"]["xattrs"]  # type: ignore[operator]
    assert "system.posix_acl_access" in after["a/file.txt"]["xattrs"]  # type: ignore[operator]
    assert "user.origin" in after["a/file.txt"]["xattrs"]  # type: ignore[operator]
    assert "security.capability" in after["with-capability"]["xattrs"]  # type: ignore[operator]
    assert "security.selinux" in after["setuid"]["xattrs"]  # type: ignore[operator]
    assert after["owned-by-unknown-uid"]["uid"] == 54321
    assert after["b/deep/hardlink.txt"]["link_group"] == "a/file.txt"
    assert after["fifo"]["type"] == "p" and after["null-device"]["rdev"] == [1, 3]
    assert all(name in after for name in ODD_NAMES)
    assert not (target / "tmp" / "scratch").exists() and (target / "tmp").is_dir()
    assert not (target / "cache" / "big.bin").exists()


def test_other_file_systems_keep_their_mount_point_only(
    source: tuple[Path, Layout], tmp_path: Path
) -> None:
    mnt, layout = source
    (mnt / "a" / "deep" / "er").mkdir(parents=True)
    (mnt / "a" / "deep" / "er" / "scratch.tmp").write_text("a relative pattern leaves it out\n")
    (mnt / "run").mkdir()
    run(["mount", "-t", "tmpfs", "none", mnt / "run"])
    try:
        (mnt / "run" / "pid").write_text("on tmpfs\n")
        plan = plan_backup(layout, excludes=[("*.tmp", "BACKUP_PROG_EXCLUDE")])
        manifest = Netfs.backup(
            plan, tmp_path / "backup", url="file:///x", layout_sha256=None, progress=quiet
        )
    finally:
        run(["umount", mnt / "run"])
    reasons = {e["pattern"]: e["reason"] for e in manifest["exclusions"]}  # type: ignore[attr-defined]
    assert "tmpfs" in reasons["/run"]
    target = restored(tmp_path, tmp_path / "backup")
    assert (target / "run").is_dir() and list((target / "run").iterdir()) == []
    assert (target / "a" / "deep" / "er").is_dir()
    assert not (target / "a" / "deep" / "er" / "scratch.tmp").exists()


def test_checker_finds_a_lost_xattr(source: tuple[Path, Layout], tmp_path: Path) -> None:
    mnt, _ = source
    before = snapshot(mnt)
    os.removexattr(mnt / "a" / "file.txt", "user.origin")
    os.chmod(mnt / "setuid", 0o755)
    problems = differences(before, snapshot(mnt))
    assert any("a/file.txt xattrs" in p for p in problems)
    assert any("setuid mode" in p for p in problems)


def test_verify_finds_truncated_and_corrupt_volumes_before_writing(
    source: tuple[Path, Layout], tmp_path: Path
) -> None:
    _, backup_dir, files = backed_up(source, tmp_path)
    volume = backup_dir / VOLUME_NAME
    good = files[VOLUME_NAME]
    target = tmp_path / "target"
    target.mkdir()

    volume.write_bytes(good[: len(good) // 2])
    with pytest.raises(BackupError, match="truncated"):
        Netfs.restore(backup_dir, target, progress=quiet)
    assert list(target.iterdir()) == []

    damaged = bytearray(good)
    damaged[len(damaged) // 2] ^= 0xFF
    volume.write_bytes(bytes(damaged))
    with pytest.raises(BackupError, match="sha256"):
        Netfs.restore(backup_dir, target, progress=quiet)
    assert list(target.iterdir()) == []

    (backup_dir / MANIFEST_NAME).unlink()
    with pytest.raises(BackupError, match="no backup manifest"):
        Netfs.verify(backup_dir)


def test_failed_backup_leaves_the_previous_one(source: tuple[Path, Layout], tmp_path: Path) -> None:
    layout, backup_dir, previous = backed_up(source, tmp_path)
    # A source directory tar cannot read makes tar fail (exit status 2) half way.
    plan = plan_backup(layout)
    plan.sources[0].path = "/does-not-exist"
    with pytest.raises(CommandError, match="does-not-exist"):
        Netfs.backup(plan, backup_dir, url="file:///x", layout_sha256=None, progress=quiet)
    assert {p.name: p.read_bytes() for p in backup_dir.iterdir()} == previous
    Netfs.verify(backup_dir)


def test_interrupted_backup_leaves_the_previous_one(
    source: tuple[Path, Layout], tmp_path: Path
) -> None:
    layout, backup_dir, previous = backed_up(source, tmp_path)

    def interrupt(done: int, total: int) -> None:
        raise KeyboardInterrupt  # Ctrl-C while tar and zstd are streaming

    # tar sleeps at every record, so the interruption surely comes while it is working.
    slow = ["--checkpoint=1", "--checkpoint-action=sleep=1"]
    with pytest.raises(KeyboardInterrupt):
        Netfs.backup(
            plan_backup(layout),
            backup_dir,
            url="file:///x",
            layout_sha256=None,
            progress=interrupt,
            tar_options=slow,
        )
    assert {p.name: p.read_bytes() for p in backup_dir.iterdir()} == previous
    assert run(["pgrep", "-f", "checkpoint-action=sleep"], check=False).returncode == 1


def test_keep_old_backup_copy(source: tuple[Path, Layout], tmp_path: Path) -> None:
    mnt, layout = source
    backup_dir = tmp_path / "backups" / "host"
    first = backup_of(mnt, layout, backup_dir)
    (mnt / "new-file").write_text("only in the second backup\n")
    second = backup_of(mnt, layout, backup_dir, keep_old=True)
    old = backup_dir.with_name("host.old")
    assert Netfs.verify(old)["started"] == first["started"]
    assert Netfs.verify(backup_dir)["files"] == int(second["files"])  # type: ignore[call-overload]
    assert int(second["files"]) == int(first["files"]) + 1  # type: ignore[call-overload]


def test_target_on_a_backed_up_file_system_is_found(
    source: tuple[Path, Layout], tmp_path: Path
) -> None:
    from rescue_runtime.backup.netfs import target_source

    mnt, layout = source
    plan: BackupPlan = plan_backup(layout)
    assert target_source(mnt / "backup" / "host", plan) is plan.sources[0]
    assert target_source(tmp_path / "elsewhere", plan) is None


def test_nested_btrfs_subvolume_is_backed_up_as_a_subvolume(tmp_path: Path) -> None:
    if which("mkfs.btrfs") is None:
        pytest.skip("mkfs.btrfs (btrfs-progs) missing")
    mnt = tmp_path / "btrfs"
    with loop_filesystem(tmp_path / "btrfs.img", mnt, "btrfs") as device:
        (mnt / "top.txt").write_text("top level\n")
        run(["btrfs", "subvolume", "create", mnt / "data"])
        run(["btrfs", "subvolume", "create", mnt / "data" / "nested"])
        (mnt / "data" / "file").write_text("in data\n")
        (mnt / "data" / "nested" / "deep.txt").write_text("in the nested subvolume\n")
        subtrees = ("data", "data/nested")  # their own file systems to the checker
        before = snapshot(mnt, subtrees=subtrees)
        layout = capture(str(mnt), devices=[device])
        plan = plan_backup(layout)
        subvolumes = [(s.path, s.fsroot) for s in plan.sources if s.kind == "subvolume"]
        assert subvolumes == [("/data", "data"), ("/data/nested", "data/nested")]
        backup_dir = tmp_path / "backup"
        manifest = Netfs.backup(
            plan, backup_dir, url="file:///x", layout_sha256=None, progress=quiet
        )
        assert [s["path"] for s in manifest["subvolumes"]] == ["/data", "/data/nested"]  # type: ignore[attr-defined]

        target_mnt = tmp_path / "target"
        with loop_filesystem(tmp_path / "target.img", target_mnt, "btrfs"):
            Netfs.restore(backup_dir, target_mnt, progress=quiet)
            assert differences(before, snapshot(target_mnt, subtrees=subtrees)) == []
            assert "deep.txt" in str(before)  # the subvolume's content was compared
            listed = run(["btrfs", "subvolume", "list", "-o", target_mnt / "data"]).stdout
            assert "data/nested" in listed
            run(["btrfs", "subvolume", "show", target_mnt / "data" / "nested"])


def test_one_file_is_read_out_of_the_backup(source: tuple[Path, Layout], tmp_path: Path) -> None:
    """What recover uses for a LUKS key file before anything is restored."""
    mnt, _ = source
    (mnt / "etc" / "keys").mkdir(parents=True)
    (mnt / "etc" / "keys" / "pv.key").write_bytes(b"\x00secret\xff" * 8)
    _, backup_dir, _ = backed_up(source, tmp_path)
    key = tmp_path / "pv.key"
    assert extract_member(backup_dir, "/etc/keys/pv.key", key)
    assert key.read_bytes() == b"\x00secret\xff" * 8
    assert key.stat().st_mode & 0o777 == 0o600
    assert not extract_member(backup_dir, "/etc/keys/none.key", tmp_path / "none.key")
    assert not (tmp_path / "none.key").exists()


def test_restore_after_a_verify_still_checks_sizes_and_zstd_checksums(
    source: tuple[Path, Layout], tmp_path: Path
) -> None:
    """check_sha256=False (recover's restore, after its verify stage): no second sha256 pass,
    but a truncated volume is still refused before any write, and changed content fails the
    restore through zstd's own checksum instead of restoring wrong bytes quietly."""
    _, backup_dir, files = backed_up(source, tmp_path)
    volume = backup_dir / VOLUME_NAME
    good = files[VOLUME_NAME]
    target = tmp_path / "target"
    target.mkdir()

    volume.write_bytes(good[:-1])
    with pytest.raises(BackupError, match="truncated"):
        Netfs.restore(backup_dir, target, progress=quiet, check_sha256=False)
    assert list(target.iterdir()) == []

    damaged = bytearray(good)
    damaged[-6] ^= 0xFF  # inside the last block, before the 4-byte content checksum
    volume.write_bytes(bytes(damaged))
    with pytest.raises(CommandError, match="zstd"):
        Netfs.restore(backup_dir, target, progress=quiet, check_sha256=False)

    volume.write_bytes(good)
    again = tmp_path / "again"
    again.mkdir()
    result = Netfs.restore(backup_dir, again, progress=quiet, check_sha256=False)
    assert result["files"] == json.loads((backup_dir / MANIFEST_NAME).read_text())["files"]
