"""Finding the backup in the rescue system (rescue_runtime/backup/medium.py) on fake /sys,
/dev and /proc trees: device resolution, marker matching, the errors; and the refusal of
`recover --demo` that leaves nothing behind."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from rescue_runtime.backup.manifest import MANIFEST_NAME, BackupError
from rescue_runtime.backup.medium import (
    ISO9660_MAGIC,
    ISO9660_MAGIC_OFFSET,
    SysBlock,
    located_backup,
    marker_path,
    rescue_medium_devices,
)
from rescue_runtime.backup.netfs import Netfs
from rescue_runtime.errors import ConfigError, MissingError
from rescue_runtime.recover.demo import demo_restore, demo_target
from rescue_runtime.rescueconf import RescueConfig

MEDIUM_ID = "0123456789abcdef"


class FakeSystem:
    """A /sys/class/block, /sys/dev/block, /dev and /proc/self/mountinfo under tmp_path."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.blocks = SysBlock(root / "sys", root / "dev", root / "proc")
        for d in ("sys/class/block", "sys/dev/block", "dev", "proc/self"):
            (root / d).mkdir(parents=True, exist_ok=True)
        (root / "proc/self/mountinfo").write_text("")

    def add(
        self,
        name: str,
        *,
        parent: str | None = None,
        numbers: str = "",
        iso: bool = False,
        size: int = 2048,
        slaves: tuple[str, ...] = (),
    ) -> None:
        base = self.root / "sys/devices/pci0000:00/block"
        entry = base / parent / name if parent else base / name
        entry.mkdir(parents=True, exist_ok=True)
        (entry / "size").write_text(f"{size}\n")
        if parent:
            (entry / "partition").write_text("1\n")
        (entry / "slaves").mkdir(exist_ok=True)
        for slave in slaves:
            (entry / "slaves" / slave).symlink_to(self.root / "sys/class/block" / slave)
        (self.root / "sys/class/block" / name).symlink_to(entry)
        if numbers:
            (self.root / "sys/dev/block" / numbers).symlink_to(entry)
        node = self.root / "dev" / name
        with open(node, "wb") as f:
            f.truncate(64 * 1024)
            if iso:
                f.seek(ISO9660_MAGIC_OFFSET)
                f.write(ISO9660_MAGIC)

    def mount(self, point: str, numbers: str, source: str, fstype: str = "ext4") -> None:
        with open(self.root / "proc/self/mountinfo", "a") as f:
            f.write(f"30 1 {numbers} / {point} rw,relatime shared:1 - {fstype} {source} rw\n")


class FakeMounter:
    """'Mounts' a device by copying the tree the test gave it; records what is mounted."""

    def __init__(self, trees: dict[str, Path]) -> None:
        self.trees = trees
        self.mounted: dict[Path, str] = {}
        self.calls: list[str] = []

    def prepare(self) -> None:
        pass

    def mount(self, device: str, mountpoint: Path) -> bool:
        name = Path(device).name
        self.calls.append(name)
        if name not in self.trees:
            return False
        shutil.copytree(self.trees[name], mountpoint, dirs_exist_ok=True, symlinks=True)
        self.mounted[mountpoint] = name
        return True

    def umount(self, mountpoint: Path) -> None:
        self.mounted.pop(mountpoint)
        shutil.rmtree(mountpoint)
        mountpoint.mkdir()


def medium_tree(tmp_path: Path, name: str, medium_id: str = MEDIUM_ID, backup: bool = True) -> Path:
    tree = tmp_path / "trees" / name
    marker = tree / marker_path(medium_id)
    marker.parent.mkdir(parents=True)
    marker.write_text(f"mkmedia rescue medium {medium_id.upper()} for vm\n")
    if backup:
        (tree / "backup").mkdir()
        (tree / "backup" / MANIFEST_NAME).write_text("{}\n")
    return tree


def iso_config(**changes: object) -> RescueConfig:
    values: dict[str, object] = {
        "hostname": "vm.example.org",
        "backup": "NETFS",
        "backup_url": "iso:///backup",
        "medium_id": MEDIUM_ID,
    }
    values.update(changes)
    return RescueConfig(**values)  # type: ignore[arg-type]


def locate(config: RescueConfig, work: Path, fake: FakeSystem, mounter: FakeMounter) -> None:
    """Locate the backup and let it go again (for the cases that must raise)."""
    with located_backup(config, work, blocks=fake.blocks, mounter=mounter):
        pass


@pytest.fixture
def fake(tmp_path: Path) -> FakeSystem:
    system = FakeSystem(tmp_path / "root")
    system.add("vda", numbers="254:0")
    system.add("vda1", parent="vda", numbers="254:1")
    return system


def test_whole_disks_through_partitions_and_holders(fake: FakeSystem) -> None:
    fake.add("sdc")
    fake.add("sdc1", parent="sdc")
    fake.add("sdd")
    fake.add("sdd1", parent="sdd")
    fake.add("md0", slaves=("sdc1", "sdd1"))
    fake.add("dm-0", slaves=("md0",), numbers="253:0")
    blocks = fake.blocks
    assert blocks.whole_disks("vda1") == {"vda"}
    assert blocks.whole_disks("vda") == {"vda"}
    assert blocks.whole_disks("dm-0") == {"sdc", "sdd"}
    fake.mount("/", "254:1", "/dev/vda1")
    fake.mount("/srv/backups", "253:0", "/dev/mapper/vg-backups")
    assert blocks.holding(fake.root / "nowhere") == {"vda"}  # under / (vda1)
    assert blocks.holding(Path("/srv/backups/vm")) == {"sdc", "sdd"}
    fake.mount("/srv/nfs", "0:52", "server:/export", "nfs4")
    assert blocks.holding(Path("/srv/nfs/vm")) == set()  # no disk under a network share
    fake.add("loop0")  # an ISO image attached with losetup, from a file on the md0 share
    (fake.root / "sys/class/block/loop0/loop").mkdir()
    (fake.root / "sys/class/block/loop0/loop/backing_file").write_text("/srv/backups/x.iso\n")
    assert blocks.whole_disks("loop0") == {"loop0", "sdc", "sdd"}


def test_the_cd_carrying_the_marker(fake: FakeSystem, tmp_path: Path) -> None:
    fake.add("sr0", iso=True)
    fake.add("sr1", iso=True)  # another rescue CD: its marker is not ours
    mounter = FakeMounter(
        {"sr0": medium_tree(tmp_path, "other", medium_id="ffffffffffffffff"),
         "sr1": medium_tree(tmp_path, "ours")}
    )  # fmt: skip
    with located_backup(iso_config(), tmp_path / "work", blocks=fake.blocks, mounter=mounter) as f:
        assert (f.directory / MANIFEST_NAME).is_file()
        assert f.directory.parent in mounter.mounted
        assert f.devices == {str(fake.root / "dev/sr1")}
    assert mounter.mounted == {}  # unmounted afterwards, the other CD at once
    assert sorted(mounter.calls) == ["sr0", "sr1"]  # vda holds no ISO 9660: never mounted
    assert list((tmp_path / "work").iterdir()) == []


def test_a_hybrid_image_on_a_usb_stick_is_its_whole_disk(fake: FakeSystem, tmp_path: Path) -> None:
    fake.add("sdb", iso=True)
    fake.add("sdb1", parent="sdb", iso=True)  # isohybrid's partition 1 starts at 0
    fake.add("sdb2", parent="sdb")  # the ESP
    fake.add("sr0", size=0)  # an empty drive
    mounter = FakeMounter({"sdb": medium_tree(tmp_path, "ours"), "sdb1": tmp_path})
    with located_backup(iso_config(), tmp_path / "work", blocks=fake.blocks, mounter=mounter) as f:
        assert f.devices == {str(fake.root / "dev/sdb")}
    assert mounter.calls == ["sdb"]
    config = iso_config()
    assert rescue_medium_devices(config, blocks=fake.blocks, mounter=mounter) == {
        str(fake.root / "dev/sdb")
    }
    assert mounter.mounted == {}


def test_no_medium_carries_the_marker(fake: FakeSystem, tmp_path: Path) -> None:
    fake.add("sr0", iso=True)
    mounter = FakeMounter({"sr0": medium_tree(tmp_path, "other", medium_id="ffffffffffffffff")})
    with pytest.raises(MissingError) as caught:
        locate(iso_config(), tmp_path / "w", fake, mounter)
    text = str(caught.value)
    assert f"marker /mkmedia/id-{MEDIUM_ID}" in text
    assert "the backup (BACKUP_URL=iso:///backup)" in text
    assert f"{fake.root}/dev/sr0: another ISO 9660 medium" in text
    assert f"{fake.root}/dev/vda: no ISO 9660 file system" in text
    assert "Insert the rescue CD/DVD" in text
    assert mounter.mounted == {}
    assert rescue_medium_devices(iso_config(), blocks=fake.blocks, mounter=mounter) == set()


def test_a_medium_without_its_backup(fake: FakeSystem, tmp_path: Path) -> None:
    fake.add("sr0", iso=True)
    mounter = FakeMounter({"sr0": medium_tree(tmp_path, "ours", backup=False)})
    with pytest.raises(BackupError, match="mkmedia mkbackup"):
        locate(iso_config(), tmp_path / "w", fake, mounter)
    assert mounter.mounted == {}


def test_what_the_configuration_must_say(fake: FakeSystem, tmp_path: Path) -> None:
    for config, words in [
        (iso_config(medium_id=""), "carries no medium id"),
        (iso_config(backup="NONE", backup_url=""), "has no backup to restore"),
    ]:
        with pytest.raises(ConfigError, match=words):
            locate(config, tmp_path / "w", fake, FakeMounter({}))
    assert rescue_medium_devices(iso_config(medium_id="")) == set()  # PXE, RAM disk


def test_file_url_is_the_hosts_directory(fake: FakeSystem, tmp_path: Path) -> None:
    share = tmp_path / "share"
    config = iso_config(backup_url=f"file://{share}")
    mounter = FakeMounter({})
    with pytest.raises(BackupError) as caught:
        locate(config, tmp_path / "w", fake, mounter)
    assert f"There is no backup directory {share}/vm " in str(caught.value)
    assert f"Mount the share that holds the backups on {share} first" in str(caught.value)

    (share / "vm").mkdir(parents=True)
    fake.mount(str(share), "254:1", "/dev/vda1")
    with located_backup(config, tmp_path / "w", blocks=fake.blocks, mounter=mounter) as found:
        assert found.directory == share / "vm"
        assert found.devices == {str(fake.root / "dev/vda")}


def test_demo_target_goes_again_when_the_restore_refuses(tmp_path: Path) -> None:
    target = tmp_path / "new" / "restore"
    with pytest.raises(BackupError), demo_target(target):
        assert target.is_dir()
        raise BackupError("damaged")
    assert not target.exists()
    kept = tmp_path / "empty"
    kept.mkdir()
    with pytest.raises(BackupError), demo_target(kept):
        raise BackupError("damaged")
    assert kept.is_dir()  # the operator's directory stays
    (kept / "x").write_text("")
    with pytest.raises(ConfigError, match="empty directory"), demo_target(kept):
        pass


def test_demo_refuses_a_truncated_backup_and_writes_nothing(tmp_path: Path) -> None:
    backup = tmp_path / "share" / "vm"
    backup.mkdir(parents=True)
    (backup / "backup.tar.zst").write_bytes(b"x" * 100)
    manifest = {
        "format_version": 1,
        "files": 1,
        "volumes": [{"name": "backup.tar.zst", "size": 200, "sha256": "0" * 64}],
    }
    (backup / MANIFEST_NAME).write_text(json.dumps(manifest))
    config = iso_config(backup_url=f"file://{tmp_path / 'share'}", medium_id="")
    target = tmp_path / "restored"
    with pytest.raises(BackupError, match="has 100 bytes, its manifest says 200"):
        demo_restore(config, target)
    assert not target.exists()
    assert sorted(os.listdir(backup)) == [MANIFEST_NAME, "backup.tar.zst"]  # nothing added


def test_iso_backups_bring_what_reads_the_medium() -> None:
    modules = Netfs.modules_for("iso:///backup")
    assert {"isofs", "cdrom", "sr_mod", "ata_piix", "ahci", "virtio_scsi", "usb_storage"} <= set(
        modules
    )
    assert Netfs.modules_for("file:///srv/backup") == ()


def test_rescue_cli_runs_the_demo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`mkmedia recover --demo DIR` in the rescue CLI reaches the demo (no rescue.json here:
    BACKUP=NONE, so it refuses before looking for any medium) and writes nothing."""
    from rescue_runtime.cli import main
    from rescue_runtime.errors import EXIT_CONFIG

    target = tmp_path / "restored"
    assert main(["recover", "--demo", str(target)]) == EXIT_CONFIG
    assert "recover --demo restores a BACKUP=NETFS backup" in capsys.readouterr().err
    assert not target.exists()
