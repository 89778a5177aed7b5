"""The backup workflows through the real `mkmedia` command: mkbackuponly with a saved layout
(left as it was), recover --demo restoring it, the target checks, mkbackup's step order,
an iso:// backup read back out of a written ISO, sshfs:// and usb:// round trips, and a
tape:// backup on a SIMH tape image (written in records, walked by `mkmedia tape verify`,
streamed back by recover --demo).

Needs root (loop devices, mknod, setcap).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mkmedia.emit.iso import write_iso
from mkmedia.kernel.choice import choose_kernel
from mkmedia.recoverdemo import extract_iso_directory
from rescue_runtime.backup.netfs import Netfs
from rescue_runtime.backup.sources import plan_backup
from rescue_runtime.errors import EXIT_CONFIG, EXIT_USAGE
from rescue_runtime.layout.capture import capture
from rescue_runtime.layout.store import save
from rescue_runtime.run import run, which
from rescue_runtime.tape.label import parse
from tests.loopfs import BACKUP_TEST_MARKS, loop_filesystem
from tests.metadata import differences, make_rich_tree, snapshot
from tests.sshserver import ssh_server
from tests.sticks import FORMAT_TOOLS, attached_stick, make_stick
from tests.tapes import tape_records

REPO = Path(__file__).resolve().parents[2]
HOST = os.uname().nodename.split(".")[0]

pytestmark = BACKUP_TEST_MARKS


def mkmedia(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, MKMEDIA_LOCK_FILE=str(tmp / "lock"))
    common = [
        "-c",
        str(tmp / "etc"),
        "--log-file",
        str(tmp / "mkmedia.log"),
        "--set",
        f"OUTPUT_URL=file://{tmp / 'out'}",
        "--set",
        f"TMPDIR={tmp}",
        "--set",
        f"LAYOUT_DIR={tmp / 'layout'}",
        "--set",
        "BACKUP=NETFS",
    ]
    command, *rest = args
    return subprocess.run(
        [sys.executable, "-m", "mkmedia", command, *common, *rest],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        check=False,
    )


@pytest.fixture
def system(tmp_path: Path) -> Iterator[Path]:
    """A rich tree on its own ext4 file system with its layout saved in tmp/layout."""
    (tmp_path / "etc").mkdir()
    mnt = tmp_path / "system"
    with loop_filesystem(tmp_path / "system.img", mnt, "ext4") as device:
        make_rich_tree(mnt)
        save(capture(str(mnt), devices=[device]), tmp_path / "layout")
        yield mnt


def test_mkbackuponly_then_recover_demo(system: Path, tmp_path: Path) -> None:
    layout_json = tmp_path / "layout" / "layout.json"
    saved = layout_json.read_bytes()
    before = snapshot(system, skip=("lost+found",))
    url = f"BACKUP_URL=file://{tmp_path / 'backups'}"

    result = mkmedia(tmp_path, "mkbackuponly", "--set", url)
    assert result.returncode == 0, result.stderr
    assert "Backed up " in result.stderr + result.stdout
    assert layout_json.read_bytes() == saved  # mkbackuponly leaves the saved layout alone
    manifest = json.loads((tmp_path / "backups" / HOST / "backup-manifest.json").read_text())
    assert manifest["layout_sha256"] == hashlib.sha256(saved).hexdigest()
    assert manifest["files"] > 20 and manifest["filesystems"][0]["path"] == "/"

    target = tmp_path / "restored"
    result = mkmedia(tmp_path, "recover", "--demo", str(target), "--set", url)
    assert result.returncode == 0, result.stderr
    assert differences(before, snapshot(target, skip=("lost+found",))) == []

    not_empty = mkmedia(tmp_path, "recover", "--demo", str(target), "--set", url)
    assert not_empty.returncode == EXIT_CONFIG and "empty directory" in not_empty.stderr
    plain = mkmedia(tmp_path, "recover", "--set", url)
    assert plain.returncode == EXIT_USAGE and "inside the rescue system" in plain.stderr


def test_target_on_a_backed_up_file_system(system: Path, tmp_path: Path) -> None:
    url = f"BACKUP_URL=file://{system / 'backups'}"
    refused = mkmedia(tmp_path, "mkbackuponly", "--set", url)
    assert refused.returncode == EXIT_CONFIG, refused.stderr
    assert "which the backup itself covers" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert not (system / "backups").exists()

    allowed = mkmedia(
        tmp_path, "mkbackuponly", "--set", url, "--set", "BACKUP_TARGET_ON_BACKED_UP_FS=yes"
    )
    assert allowed.returncode == 0, allowed.stderr
    backup_dir = system / "backups" / HOST
    target = tmp_path / "restored"
    target.mkdir()
    Netfs.restore(backup_dir, target, progress=lambda done, total: None)
    assert (target / "backups").is_dir()  # the directory stays, the backup is not in itself
    assert list((target / "backups").iterdir()) == []


def test_iso_target_needs_mkbackup(system: Path, tmp_path: Path) -> None:
    result = mkmedia(tmp_path, "mkbackuponly", "--set", "BACKUP_URL=iso:///backup")
    assert result.returncode == EXIT_CONFIG and "does not write" in result.stderr
    clash = mkmedia(tmp_path, "mkbackup", "--set", "BACKUP_URL=iso:///boot")
    assert clash.returncode == EXIT_CONFIG and "holds the boot files" in clash.stderr


def test_mkbackup_backs_up_before_the_iso_is_written(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    result = mkmedia(tmp_path, "mkbackup", "--simulate", "--set", "BACKUP_URL=iso:///backup")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()

    def position(label: str) -> int:
        return next(i for i, line in enumerate(lines) if label in line)

    assert position("layout/100_save-layout") < position("layout/200_plan-backup-sources")
    assert position("layout/200_plan-backup-sources") < position("rootfs/")
    assert position("backup/100_make-backup") < position("output/100_write-media")


def test_iso_round_trip(system: Path, tmp_path: Path) -> None:
    """The backup inside a written ISO, restored by `mkmedia recover --demo`, which reads it
    out with xorriso (this host's kernel has no iso9660 driver to loop-mount it; the rescue
    system mounts its medium itself)."""
    from rescue_runtime.layout.store import load

    if which("xorriso") is None:
        pytest.skip("xorriso missing")
    before = snapshot(system, skip=("lost+found",))
    payload = tmp_path / "payload" / "backup"
    Netfs.backup(
        plan_backup(load(tmp_path / "layout")),
        payload,
        url="iso:///backup",
        layout_sha256=None,
        progress=lambda done, total: None,
    )
    initrd = tmp_path / "initrd.gz"
    initrd.write_bytes(gzip.compress(b"not a real initrd\n" * 100, mtime=0))
    iso = tmp_path / "out" / HOST / f"{HOST}.iso"  # where OUTPUT_URL and OUTPUT_PREFIX put it
    write_iso(
        iso,
        kernel=choose_kernel("auto").image,
        initrd=initrd,
        volume_label=None,
        host=HOST,
        payload_dirs={"backup": payload},
        source_date_epoch=1_700_000_000,
        work_dir=tmp_path / "iso-work",
    )
    copy = extract_iso_directory(iso, "backup", tmp_path / "from-iso")
    assert sorted(p.name for p in copy.iterdir()) == ["backup-manifest.json", "backup.tar.zst"]
    target = tmp_path / "restored"
    result = mkmedia(
        tmp_path, "recover", "--demo", str(target), "--set", "BACKUP_URL=iso:///backup"
    )
    assert result.returncode == 0, result.stderr
    assert differences(before, snapshot(target, skip=("lost+found",))) == []


def test_sshfs_round_trip(system: Path, tmp_path: Path) -> None:
    """sshfs:// against an sshd of the test's own on loopback: backup, then recover --demo."""
    if which("sshfs") is None or which("sshd") is None or not Path("/dev/fuse").exists():
        pytest.skip("sshfs, sshd (openssh-server) or /dev/fuse missing")
    before = snapshot(system, skip=("lost+found",))
    share = tmp_path / "share"
    share.mkdir()
    with ssh_server(tmp_path / "sshd") as server:
        settings = [
            "--set",
            f"BACKUP_URL=sshfs://root@127.0.0.1:{server.port}{share}",
            "--set",
            f"BACKUP_OPTIONS={server.options}",
        ]
        result = mkmedia(tmp_path, "mkbackuponly", *settings)
        assert result.returncode == 0, result.stderr
        assert Netfs.verify(share / HOST)["files"] > 20
        target = tmp_path / "restored"
        result = mkmedia(tmp_path, "recover", "--demo", str(target), *settings)
        assert result.returncode == 0, result.stderr
    assert differences(before, snapshot(target, skip=("lost+found",))) == []
    mounts = run(["findmnt", "-rn", "-t", "fuse.sshfs", "-o", "TARGET"], check=False).stdout
    assert str(tmp_path) not in mounts  # unmounted after each run


def test_usb_round_trip(system: Path, tmp_path: Path) -> None:
    """usb:// on a stick image made by `mkmedia format`, attached as a loop device: a partition
    that is not the stick's data partition is refused before anything is written; mkbackuponly
    puts the backup into backup/<host>/ on the data partition, recover --demo brings it back.
    (By label, /dev/disk/by-label/MKMEDIA-000, the stick is found in the rescue guest of
    tests/vm/test_backup_remote_guest.py: this host's other tests may attach such sticks too.)"""
    from mkmedia.usb.partition import read_table

    if any(which(tool) is None for tool in FORMAT_TOOLS):
        pytest.skip(f"one of {', '.join(FORMAT_TOOLS)} is missing")
    image = tmp_path / "stick.img"
    make_stick(image, tmp_path / "format")
    before = snapshot(system, skip=("lost+found",))
    target = tmp_path / "restored"
    with attached_stick(image) as device:
        esp = mkmedia(tmp_path, "mkbackuponly", "--set", f"BACKUP_URL=usb://{device}p2")
        assert esp.returncode == EXIT_CONFIG, esp.stderr
        assert f"{device}p2 is not the data partition" in esp.stderr and "vfat" in esp.stderr
        url = f"BACKUP_URL=usb://{device}p3"
        result = mkmedia(tmp_path, "mkbackuponly", "--set", url)
        assert result.returncode == 0, result.stderr
        assert f"to usb://{device}p3" in result.stderr + result.stdout
        result = mkmedia(tmp_path, "recover", "--demo", str(target), "--set", url)
        assert result.returncode == 0, result.stderr
        mounts = run(["findmnt", "-rn", "-S", f"{device}p3"], check=False).stdout
        assert mounts == ""  # unmounted after each run
    assert differences(before, snapshot(target, skip=("lost+found",))) == []
    # read back without mounting: the backup sits in backup/<host>/ of the data partition
    plan = read_table(image)
    assert plan is not None
    listing = run(
        ["debugfs", "-R", f"ls -p /backup/{HOST}", f"{image}?offset={plan.data().offset}"]
    )
    names = {line.split("/")[5] for line in listing.stdout.splitlines() if line.count("/") >= 6}
    assert {"backup.tar.zst", "backup-manifest.json"} <= names, listing.stdout


def test_encrypted_incremental_volumes_through_the_command(system: Path, tmp_path: Path) -> None:
    """BACKUP_TYPE, BACKUP_VOLUME_SIZE and BACKUP_CRYPT_KEY_FILE from the settings: two
    mkbackuponly runs make a full and an incremental archive in 1 MiB encrypted volumes, and
    recover --demo brings back the second state."""
    (system / "data.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    key = tmp_path / "keys" / "backup.key"
    key.parent.mkdir()
    key.write_text("K" * 12 + "c2VjcmV0LWtleS1mb3ItdGVzdHM=\n")
    key.chmod(0o600)
    settings = [
        *("--set", f"BACKUP_URL=file://{tmp_path / 'backups'}"),
        *("--set", "BACKUP_TYPE=incremental"),
        *("--set", "BACKUP_VOLUME_SIZE=1"),
        *("--set", f"BACKUP_CRYPT_KEY_FILE={key}"),
    ]
    first = mkmedia(tmp_path, "mkbackuponly", *settings)
    assert first.returncode == 0, first.stderr
    (system / "a" / "file.txt").unlink()
    (system / "later.txt").write_text("after the full backup\n")
    second = mkmedia(tmp_path, "mkbackuponly", *settings)
    assert second.returncode == 0, second.stderr
    manifest = json.loads((tmp_path / "backups" / HOST / "backup-manifest.json").read_text())
    assert [a["type"] for a in manifest["archives"]] == ["full", "incremental"]
    assert len(manifest["archives"][0]["volumes"]) >= 3
    assert manifest["encryption"]["cipher"] == "aes-256-ctr"
    state = snapshot(system, skip=("lost+found",))

    target = tmp_path / "restored"
    result = mkmedia(tmp_path, "recover", "--demo", str(target), *settings)
    assert result.returncode == 0, result.stderr
    assert differences(state, snapshot(target, skip=("lost+found",))) == []

    wrong = tmp_path / "wrong.key"
    wrong.write_text("W" * 40 + "\n")
    other = tmp_path / "other"
    refused = mkmedia(
        tmp_path, "recover", "--demo", str(other), *settings[:-1], f"BACKUP_CRYPT_KEY_FILE={wrong}"
    )
    assert refused.returncode != 0 and "does not open the backup" in refused.stderr
    assert "Traceback" not in refused.stderr and not other.exists()


def test_archive_settings_are_checked_before_anything_is_made(system: Path, tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    key = backups / "backup.key"
    key.parent.mkdir()
    key.write_text("K" * 40 + "\n")
    for settings, words in [
        ([f"BACKUP_URL=file://{backups}", f"BACKUP_CRYPT_KEY_FILE={key}"], "beside the backup"),
        ([f"BACKUP_URL=file://{backups}", "BACKUP_CRYPT_KEY_FILE=rel.key"], "absolute path"),
        (["BACKUP_URL=iso:///backup", "BACKUP_TYPE=incremental"], "new ISO"),
        (["BACKUP_URL=iso:///backup", "BACKUP_VOLUME_SIZE=5000"], "at most 4095"),
    ]:
        args = [part for value in settings for part in ("--set", value)]
        result = mkmedia(tmp_path, "mkbackup", *args)
        assert result.returncode == EXIT_CONFIG and words in result.stderr, (settings, result)
        assert "Traceback" not in result.stderr
    assert sorted(p.name for p in backups.iterdir()) == ["backup.key"]


def test_tape_backup_round_trip(system: Path, tmp_path: Path) -> None:
    image = tmp_path / "backup.tap"
    url = f"BACKUP_URL=tape://{image}"
    before = snapshot(system, skip=("lost+found",))

    image.write_bytes(b"VOL1" + bytes(2000))  # not a .tap of ours: refused, nothing made
    refused = mkmedia(tmp_path, "mkbackuponly", "--set", url)
    assert refused.returncode == EXIT_CONFIG, refused.stderr
    assert "does not write over another program's tape" in refused.stderr
    assert "TAPE_OVERWRITE=yes" in refused.stderr and "Traceback" not in refused.stderr
    assert image.read_bytes()[:4] == b"VOL1"

    # OUTPUT=OBDR: the same refusal in the prep stage, and the URL must name its tape; each
    # before the layout is saved again (it would be this machine's: no capture_root here)
    layout_json = (tmp_path / "layout" / "layout.json").read_bytes()
    obdr = ("--set", "OUTPUT=OBDR", "--set", f"TAPE_DEVICE={image}")
    for sets, message in (
        (("--set", "OUTPUT=OBDR", "--set", url), "TAPE_DEVICE is empty"),
        ((*obdr, "--set", url), "does not write over another program's tape"),
        (
            (*obdr, "--set", f"BACKUP_URL=tape://{tmp_path}/o.tap", "--set", "TAPE_OVERWRITE=1"),
            "BACKUP_URL names",
        ),
        ((*obdr, "--set", url, "--set", "TAPE_OVERWRITE=yes"), "OBDR tape is written whole"),
    ):
        command = "mkbackuponly" if "OBDR tape" in message else "mkbackup"
        refused = mkmedia(tmp_path, command, *sets)
        assert refused.returncode == EXIT_CONFIG and message in refused.stderr, refused.stderr
        assert not (tmp_path / "out").exists() and "Traceback" not in refused.stderr
        assert (tmp_path / "layout" / "layout.json").read_bytes() == layout_json

    result = mkmedia(
        tmp_path, "mkbackuponly", "--set", url, "--set", "TAPE_OVERWRITE=yes",
        "--set", "TAPE_BLOCK_SIZE=8192",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    found = tape_records(image)
    label = parse(found[0], str(image))
    assert label is not None and label.kind == "plain" and label.block_size == 8192
    assert found[1] == b""  # the label's filemark
    end = found.index(b"", 2)
    manifest = json.loads(b"".join(found[2:end]))
    stream = found[end + 1 : -2]
    assert found[-2:] == [b"", b""]
    assert all(len(r) == 8192 for r in stream)
    size = manifest["volumes"][0]["size"]
    assert len(stream) == -(-size // 8192)

    verified = mkmedia(tmp_path, "tape", "--set", url, "verify", str(image))
    assert verified.returncode == 0, verified.stderr
    assert f"backup: {manifest['files']} files" in verified.stdout
    assert "complete and intact" in verified.stdout

    target = tmp_path / "restored"
    restored = mkmedia(tmp_path, "recover", "--demo", str(target), "--set", url)
    assert restored.returncode == 0, restored.stderr
    assert differences(before, snapshot(target, skip=("lost+found",))) == []

    # one byte of the stream changed: the restore says the tape is damaged
    raw = bytearray(image.read_bytes())
    first_data = (512 + 8) + 4 + (end - 2) * (512 + 8) + 4 + 4  # label, FM, manifest, FM
    raw[first_data + min(100, size // 2)] ^= 0xFF
    image.write_bytes(bytes(raw))
    damaged = mkmedia(tmp_path, "recover", "--demo", str(tmp_path / "r2"), "--set", url)
    assert damaged.returncode != 0
    assert "does not match the sha256" in damaged.stderr or "zstd" in damaged.stderr
    assert "Traceback" not in damaged.stderr
    bad = mkmedia(tmp_path, "tape", "--set", url, "verify", str(image))
    assert bad.returncode != 0 and "does not match the sha256" in bad.stderr, bad.stderr
