"""NETFS archive features with real tar, zstd, split and openssl on a real file system (a loop
device): numbered volumes, incremental and differential chains, encryption with a key file,
and a killed stream leaving the previous backup (kept copy included) as it was.

Needs root (loop devices, mknod, setcap, chown to unknown ids).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from rescue_runtime.backup.crypt import CryptKeyError
from rescue_runtime.backup.manifest import MANIFEST_NAME, BackupError
from rescue_runtime.backup.netfs import Netfs, extract_member
from rescue_runtime.backup.sources import plan_backup
from rescue_runtime.errors import CommandError, MissingError
from rescue_runtime.layout.capture import capture
from rescue_runtime.layout.model import Layout
from rescue_runtime.run import run
from tests.backupsource import quiet, rich_source
from tests.loopfs import BACKUP_TEST_MARKS
from tests.metadata import differences, snapshot

pytestmark = BACKUP_TEST_MARKS
VOLUME = 64 * 1024  # small volumes: the tree gives several


@pytest.fixture
def source(tmp_path: Path) -> Iterator[tuple[Path, Layout]]:
    """A rich tree with some incompressible data on its own ext4, and its layout."""
    with rich_source(tmp_path) as (mnt, _, device):
        (mnt / "data").mkdir()
        for n in range(4):
            (mnt / "data" / f"random-{n}.bin").write_bytes(os.urandom(50_000))
        yield mnt, capture(str(mnt), devices=[device])


def backup(mnt: Path, layout: Layout, directory: Path, **options: object) -> dict[str, object]:
    return Netfs.backup(
        plan_backup(layout),
        directory,
        url="file:///x",
        layout_sha256=None,
        progress=quiet,
        **options,  # type: ignore[arg-type]
    )


def state(mnt: Path) -> dict[str, dict[str, object]]:
    return snapshot(mnt, skip=("lost+found",))


def restore_into(
    tmp_path: Path, directory: Path, name: str = "restored", **options: object
) -> Path:
    target = tmp_path / name
    target.mkdir()
    Netfs.restore(directory, target, progress=quiet, **options)  # type: ignore[arg-type]
    return target


def test_numbered_volumes_round_trip_and_verify_each(
    source: tuple[Path, Layout], tmp_path: Path
) -> None:
    mnt, layout = source
    before = state(mnt)
    directory = tmp_path / "backups" / "host"
    manifest = backup(mnt, layout, directory, volume_size=VOLUME)
    listed = manifest["volumes"]
    assert isinstance(listed, list) and len(listed) >= 3
    names = [str(v["name"]) for v in listed]
    assert names == [f"backup.tar.zst.{n:03d}" for n in range(1, len(names) + 1)]
    assert all(int(v["size"]) == VOLUME for v in listed[:-1])
    assert 0 < int(listed[-1]["size"]) <= VOLUME
    assert sorted(p.name for p in directory.iterdir()) == sorted([*names, MANIFEST_NAME])

    after = state(restore_into(tmp_path, directory))
    assert differences(before, after) == []
    assert any(name.startswith("data/random-") for name in after)

    # A damaged middle volume, then a missing one: refused before anything is written.
    middle = directory / names[1]
    good = middle.read_bytes()
    middle.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    target = tmp_path / "target"
    target.mkdir()
    with pytest.raises(BackupError, match=names[1]):
        Netfs.restore(directory, target, progress=quiet)
    middle.unlink()
    with pytest.raises(BackupError, match=f"{names[1]} is missing"):
        Netfs.restore(directory, target, progress=quiet)
    assert list(target.iterdir()) == []


def _change(mnt: Path) -> None:
    """Between two backups: a file changed, one added, one deleted, a directory deleted."""
    (mnt / "a" / "file.txt").write_bytes(b"changed content\n" * 50)
    (mnt / "data" / "added.bin").write_bytes(os.urandom(10_000))
    (mnt / "data" / "random-0.bin").unlink()
    (mnt / "empty-dir").rmdir()


def test_incremental_chain_restores_the_latest_state_with_deletions(
    source: tuple[Path, Layout], tmp_path: Path
) -> None:
    mnt, layout = source
    directory = tmp_path / "backups" / "host"
    full = backup(mnt, layout, directory, backup_type="incremental", volume_size=VOLUME)
    assert [a["type"] for a in full["archives"]] == ["full"]  # type: ignore[attr-defined]
    _change(mnt)
    second = state(mnt)
    inc = backup(mnt, layout, directory, backup_type="incremental")
    archives = inc["archives"]
    assert isinstance(archives, list)
    assert [(a["type"], a["level"], a["predecessor"]) for a in archives] == [
        ("full", 0, None),
        ("incremental", 1, "backup"),
    ]
    assert archives[1]["files"] < archives[0]["files"]  # only what changed, and directories
    (mnt / "data" / "third.bin").write_bytes(b"third\n")
    third = state(mnt)
    inc2 = backup(mnt, layout, directory, backup_type="incremental")
    assert [a["level"] for a in inc2["archives"]] == [0, 1, 2]  # type: ignore[attr-defined]

    after = state(restore_into(tmp_path, directory))
    assert differences(third, after) == []
    assert not (tmp_path / "restored" / "data" / "random-0.bin").exists()
    assert second != third  # the states differ, so the comparison above can fail

    # A missing link is named before anything is written.
    (directory / str(archives[1]["volumes"][0])).unlink()
    target = tmp_path / "target"
    target.mkdir()
    with pytest.raises(BackupError, match="backup-001-incremental"):
        Netfs.restore(directory, target, progress=quiet)
    assert list(target.iterdir()) == []


def test_differential_replaces_the_previous_differential(
    source: tuple[Path, Layout], tmp_path: Path
) -> None:
    mnt, layout = source
    directory = tmp_path / "backups" / "host"
    backup(mnt, layout, directory, backup_type="differential")
    _change(mnt)
    first = backup(mnt, layout, directory, backup_type="differential")
    (mnt / "data" / "later.bin").write_bytes(b"later\n")
    latest = state(mnt)
    second = backup(mnt, layout, directory, backup_type="differential")
    chain = [(a["name"], a["type"], a["predecessor"]) for a in second["archives"]]  # type: ignore[attr-defined]
    assert chain == [
        ("backup", "full", None),
        ("backup-002-differential", "differential", "backup"),
    ]
    gone = first["archives"][1]["volumes"][0]  # type: ignore[index]
    assert not (directory / gone).exists()
    assert differences(latest, state(restore_into(tmp_path, directory))) == []


def test_broken_chain_is_refused_naming_the_missing_link(
    source: tuple[Path, Layout], tmp_path: Path
) -> None:
    mnt, layout = source
    directory = tmp_path / "backups" / "host"
    backup(mnt, layout, directory, backup_type="incremental")
    (mnt / "x").write_text("x\n")
    backup(mnt, layout, directory, backup_type="incremental")
    (mnt / "y").write_text("y\n")
    backup(mnt, layout, directory, backup_type="incremental")
    manifest = directory / MANIFEST_NAME
    document = json.loads(manifest.read_text())
    # The middle archive drops out of the manifest (as a hand-edited or mixed-up copy would).
    document["archives"].pop(1)
    manifest.write_text(json.dumps(document))
    with pytest.raises(BackupError, match="link backup-001-incremental is missing"):
        Netfs.verify(directory)


KEY = "k" * 20 + "Zm9vYmFyYmF6cXV4cXV1eA=="


def test_encrypted_round_trip_and_wrong_key_refusal(
    source: tuple[Path, Layout], tmp_path: Path
) -> None:
    mnt, layout = source
    before = state(mnt)
    key = tmp_path / "backup.key"
    key.write_text(KEY + "\n")
    directory = tmp_path / "backups" / "host"
    manifest = backup(mnt, layout, directory, key_file=key, volume_size=VOLUME)
    names = [str(v["name"]) for v in manifest["volumes"]]  # type: ignore[attr-defined]
    assert names[0] == "backup.tar.zst.enc.001"
    head = (directory / names[0]).read_bytes()[:8]
    assert head == b"Salted__"  # openssl's header, not zstd's magic 28 b5 2f fd
    assert b"content of a file" not in b"".join((directory / n).read_bytes() for n in names)

    after = state(restore_into(tmp_path, directory, key_file=key))
    assert differences(before, after) == []
    (mnt / "etc").mkdir()
    (mnt / "etc" / "secret").write_text("s3cret\n")

    wrong = tmp_path / "wrong.key"
    wrong.write_text("w" * 44 + "\n")
    target = tmp_path / "target"
    target.mkdir()
    with pytest.raises(CryptKeyError, match="does not open the backup"):
        Netfs.restore(directory, target, progress=quiet, key_file=wrong)
    with pytest.raises(MissingError, match="encrypted and no key file"):
        Netfs.restore(directory, target, progress=quiet)
    assert list(target.iterdir()) == []

    # A manifest changed by someone without the key (a volume swapped for another, its
    # size and sha256 changed to match): the HMAC finds it.
    document = json.loads((directory / MANIFEST_NAME).read_text())
    document["volumes"][0]["sha256"] = "0" * 64
    (directory / MANIFEST_NAME).write_text(json.dumps(document))
    with pytest.raises(CryptKeyError, match="manifest was changed"):
        Netfs.verify(directory, key_file=key)


def test_encrypted_incremental_and_one_file_out(
    source: tuple[Path, Layout], tmp_path: Path
) -> None:
    mnt, layout = source
    key = tmp_path / "backup.key"
    key.write_text(KEY)
    directory = tmp_path / "backups" / "host"
    backup(mnt, layout, directory, key_file=key, backup_type="incremental")
    (mnt / "keys").mkdir()
    (mnt / "keys" / "pv.key").write_bytes(b"only in the incremental\n")
    backup(mnt, layout, directory, key_file=key, backup_type="incremental")
    # Encryption switched off: the next incremental run starts a new, plain chain.
    plain = tmp_path / "plain"
    shutil.copytree(directory, plain)
    restarted = backup(mnt, layout, plain, backup_type="incremental")
    assert [a["type"] for a in restarted["archives"]] == ["full"]  # type: ignore[attr-defined]
    assert "encryption" not in restarted
    out = tmp_path / "pv.key"
    assert extract_member(directory, "/keys/pv.key", out, key_file=key)
    assert out.read_bytes() == b"only in the incremental\n"
    assert extract_member(directory, "/a/file.txt", tmp_path / "f", key_file=key)
    assert not extract_member(directory, "/keys/none", tmp_path / "none", key_file=key)


def test_key_file_must_be_one_long_line(source: tuple[Path, Layout], tmp_path: Path) -> None:
    mnt, layout = source
    key = tmp_path / "short.key"
    key.write_text("short\n")
    with pytest.raises(Exception, match="openssl rand -base64 48"):
        backup(mnt, layout, tmp_path / "b", key_file=key)
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("backup_type", ["full", "incremental"])
def test_killed_stream_leaves_the_previous_backup_and_no_old_copy(
    source: tuple[Path, Layout], tmp_path: Path, backup_type: str
) -> None:
    mnt, layout = source
    directory = tmp_path / "backups" / "host"
    backup(mnt, layout, directory, volume_size=VOLUME, backup_type=backup_type)
    previous = {p.name: p.read_bytes() for p in directory.iterdir()}
    marker = f"/kill-marker-{uuid.uuid4().hex}"
    killed: list[int] = []

    def kill_tar(done: int, total: int) -> None:
        if killed:
            return
        found = run(["pgrep", "-f", marker], check=False).stdout.split()
        for pid in found:
            os.kill(int(pid), signal.SIGKILL)
            killed.append(int(pid))

    slow = ("--checkpoint=1", "--checkpoint-action=sleep=1", f"--exclude={marker}")
    with pytest.raises(CommandError, match="SIGKILL"):
        Netfs.backup(
            plan_backup(layout),
            directory,
            url="file:///x",
            layout_sha256=None,
            progress=kill_tar,
            tar_options=slow,
            volume_size=VOLUME,
            keep_old=True,
            backup_type=backup_type,
        )
    assert killed
    assert {p.name: p.read_bytes() for p in directory.iterdir()} == previous
    assert not directory.with_name("host.old").exists()
    Netfs.verify(directory)
