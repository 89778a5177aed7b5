"""Finalize's rewrites of a restored system moved to other disks: every file that names a
device by path, by-id or by-path follows the disk mapping (with the `p` rule for names
ending in a digit), a changed UUID is replaced in every spelling, grub.cfg is only marked for
regeneration, and each changed line is in the recovery report."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rescue_runtime.layout.model import (
    Disk,
    Filesystem,
    Layout,
    LuksDevice,
    MdArray,
    Mount,
    Partition,
)
from rescue_runtime.recover import report
from rescue_runtime.recover.finalize_rewrite import (
    live_links,
    respell,
    rewrite_references,
    uuid_changes,
)
from rescue_runtime.recover.mapping import apply_mapping
from tests.files import write_files

BOOT = "0b6c3d6e-1f0a-4c3e-9a55-6a1d2f7e8b01"
SWAP = "5d2a9c41-77b3-4e0f-8c2d-3b9a1e6f4c02"
LUKS = "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b03"
ROOT = "c3b2a190-8f7e-4d6c-9b5a-4e3d2c1b0a04"
MD = "a1b2c3d4:e5f60718:293a4b5c:6d7e8f90"
OLD_ID = "/dev/disk/by-id/virtio-SRC0001"
OLD_PATH = "/dev/disk/by-path/pci-0000:00:04.0"


def saved_layout() -> Layout:
    """A virtio machine: vda1 /boot, vda2 swap, vda3 LUKS with the root, vdb1 an MD member."""
    vda = Disk(
        path="/dev/vda",
        size=20 << 30,
        table="gpt",
        by_id=[OLD_ID],
        by_path=[OLD_PATH],
        partitions=[
            Partition(path=f"/dev/vda{n}", number=n, start=n << 20, size=1 << 30, type="83",
                      disk="/dev/vda")
            for n in (1, 2, 3)
        ],
    )  # fmt: skip
    vdb = Disk(
        path="/dev/vdb",
        size=20 << 30,
        table="gpt",
        partitions=[Partition(path="/dev/vdb1", number=1, start=1 << 20, size=1 << 30,
                              type="FD", disk="/dev/vdb")],
    )  # fmt: skip
    return Layout(
        disks=[vda, vdb],
        luks=[LuksDevice(path="/dev/mapper/root", name="root", device="/dev/vda3", uuid=LUKS)],
        mds=[MdArray(path="/dev/md0", level="raid1", uuid=MD, members=["/dev/vdb1"])],
        filesystems=[
            Filesystem(device="/dev/vda1", fstype="ext4", uuid=BOOT),
            Filesystem(device="/dev/vda2", fstype="swap", uuid=SWAP),
            Filesystem(device="/dev/mapper/root", fstype="ext4", uuid=ROOT),
        ],
        mounts=[
            Mount(mountpoint="/", device="/dev/mapper/root", fstype="ext4"),
            Mount(mountpoint="/boot", device="/dev/vda1", fstype="ext4"),
        ],
    )


RESTORED = {
    "etc/fstab": (
        "# <file system> <mount point> <type> <options> <dump> <pass>\n"
        "/dev/mapper/root / ext4 errors=remount-ro 0 1\n"
        f"{OLD_ID}-part1 /boot ext4 defaults 0 2\n"
        "/dev/vda2 none swap sw 0 0\n"
        "/dev/vdb1 /srv/raw ext4 noauto,x-systemd.requires=/dev/vda1 0 0\n"
        "/dev/vdab1 /mnt/other ext4 noauto 0 0\n"
    ),
    "etc/crypttab": f"root {OLD_PATH}-part3 none luks,discard\n",
    "etc/mdadm/mdadm.conf": (
        "DEVICE /dev/vdb1 /dev/vda*\n"
        f"ARRAY /dev/md0 metadata=1.2 UUID={MD} devices=/dev/vdb1,{OLD_ID}-part2\n"
    ),
    "boot/grub/device.map": f"(hd0)\t{OLD_ID}\n(hd1)\t/dev/vdb\n",
    "etc/default/grub": (
        "GRUB_DEFAULT=0\n"
        'GRUB_CMDLINE_LINUX_DEFAULT="quiet resume=/dev/vda2"\n'
        f'GRUB_CMDLINE_LINUX="resume={OLD_ID}-part2"\n'
        '# GRUB_CMDLINE_LINUX="resume=/dev/vda2" is a comment\n'
    ),
    "etc/initramfs-tools/conf.d/resume": "RESUME=/dev/vda2\n",
    "etc/lvm/lvm.conf": '# filter = [ "a|/dev/vda3|" ]\n\tfilter = [ "a|^/dev/vda3$|", "r|.*|" ]\n',
    "etc/systemd/system/srv-raw.mount": "[Mount]\nWhat=/dev/vdb1\nWhere=/srv/raw\n",
    "etc/dracut.conf.d/resume.conf": (
        'add_device+=" /dev/vda2 "\nkernel_cmdline="resume=/dev/vda2"\n'
    ),
    "boot/grub/grub.cfg": "linux /vmlinuz root=/dev/mapper/root ro resume=/dev/vda2\n",
}


def new_links(tmp_path: Path, links: dict[str, str]) -> dict[str, str]:
    """udev's links as the rescue system has them, read back by live_links."""
    dev_disk = tmp_path / "dev-disk"
    for link, device in links.items():
        path = dev_disk / link
        path.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(f"../../{device}", path)
    return live_links(dev_disk)


def test_a_move_to_nvme_rewrites_every_file_with_the_p_rule(
    tmp_path: Path, recover_report: Path
) -> None:
    target = write_files(tmp_path / "target", RESTORED)
    (target / "etc/crypttab").chmod(0o600)
    mapped, table = apply_mapping(
        saved_layout(), {"/dev/vda": "/dev/nvme0n1", "/dev/vdb": "/dev/sda"}
    )
    links = new_links(
        tmp_path,
        {
            "by-id/nvme-QEMU_NVMe_Ctrl_NEW0001": "nvme0n1",
            "by-id/nvme-eui.0011223344556677": "nvme0n1",
            "by-path/pci-0000:00:05.0-nvme-1": "nvme0n1",
            "by-id/ata-QEMU_HARDDISK_QM00001": "sda",
        },
    )
    result = rewrite_references(mapped, target, table, {}, links)

    fstab = (target / "etc/fstab").read_text().splitlines()
    assert fstab[1] == "/dev/mapper/root / ext4 errors=remount-ro 0 1"  # untouched
    # virtio-... has no virtio name on NVMe: the file system's UUID names it
    assert fstab[2] == f"UUID={BOOT} /boot ext4 defaults 0 2"
    assert fstab[3] == "/dev/nvme0n1p2 none swap sw 0 0"
    assert fstab[4] == "/dev/sda1 /srv/raw ext4 noauto,x-systemd.requires=/dev/nvme0n1p1 0 0"
    assert fstab[5] == "/dev/vdab1 /mnt/other ext4 noauto 0 0"  # another disk, same prefix
    # by-path embeds the controller: the new disk's one by-path name
    assert (target / "etc/crypttab").read_text() == (
        "root /dev/disk/by-path/pci-0000:00:05.0-nvme-1-part3 none luks,discard\n"
    )
    assert (target / "etc/crypttab").stat().st_mode & 0o777 == 0o600
    assert (target / "etc/mdadm/mdadm.conf").read_text() == (
        "DEVICE /dev/sda1 /dev/vda*\n"  # a glob is left to the operator
        f"ARRAY /dev/md0 metadata=1.2 UUID={MD} devices=/dev/sda1,/dev/nvme0n1p2\n"
    )
    # two nvme- names (model_serial, eui): none is "the" equivalent, no UUID= in device.map
    assert (target / "boot/grub/device.map").read_text() == "(hd0)\t/dev/nvme0n1\n(hd1)\t/dev/sda\n"
    grub = (target / "etc/default/grub").read_text().splitlines()
    assert grub[1] == 'GRUB_CMDLINE_LINUX_DEFAULT="quiet resume=/dev/nvme0n1p2"'
    assert grub[2] == f'GRUB_CMDLINE_LINUX="resume=UUID={SWAP}"'
    assert grub[3].endswith('resume=/dev/vda2" is a comment')
    assert (target / "etc/initramfs-tools/conf.d/resume").read_text() == "RESUME=/dev/nvme0n1p2\n"
    assert (target / "boot/grub/grub.cfg").read_text() == RESTORED["boot/grub/grub.cfg"]

    lines = report.section("rewrite", recover_report)
    assert (
        f"/etc/fstab: '{OLD_ID}-part1 /boot ext4 defaults 0 2' -> 'UUID={BOOT} /boot ext4 "
        "defaults 0 2'" in lines
    )
    assert (
        "/etc/initramfs-tools/conf.d/resume: 'RESUME=/dev/vda2' -> 'RESUME=/dev/nvme0n1p2'" in lines
    )
    assert any(line.startswith("/boot/grub/grub.cfg names /dev/vda2") for line in lines)
    assert (target / "etc/lvm/lvm.conf").read_text() == (
        '# filter = [ "a|/dev/vda3|" ]\n\tfilter = [ "a|^/dev/nvme0n1p3$|", "r|.*|" ]\n'
    )
    assert (target / "etc/systemd/system/srv-raw.mount").read_text().split()[1] == "What=/dev/sda1"
    assert (target / "etc/dracut.conf.d/resume.conf").read_text() == (
        'add_device+=" /dev/nvme0n1p2 "\nkernel_cmdline="resume=/dev/nvme0n1p2"\n'
    )
    # fstab 3, crypttab, mdadm.conf 2, device.map 2, grub 2, resume, lvm.conf, .mount,
    # dracut 2, the glob, grub.cfg
    assert len(lines) == 17
    assert any(n.startswith("WARNING: /etc/mdadm/mdadm.conf looks for MD members in /dev/vda*")
               for n in result.notes)  # fmt: skip
    assert result.grub_reasons[0] == "/etc/default/grub (kernel command line) rewritten"
    assert any("grub.cfg names /dev/vda2" in r for r in result.grub_reasons)
    assert result.initramfs_reasons == [
        "/etc/crypttab rewritten",
        "/etc/mdadm/mdadm.conf rewritten",
        "/etc/initramfs-tools/conf.d/resume rewritten",
        "/etc/lvm/lvm.conf rewritten",
        "/etc/dracut.conf.d/resume.conf rewritten",
    ]


def test_the_same_disk_kind_keeps_its_kind_of_name(tmp_path: Path) -> None:
    """SATA to SATA: the ata- name becomes the new disk's ata- name, partitions follow."""
    layout = saved_layout()
    layout.disks[0].by_id = ["/dev/disk/by-id/ata-OLD_SERIAL"]
    target = write_files(
        tmp_path / "t", {"etc/crypttab": "root /dev/disk/by-id/ata-OLD_SERIAL-part3 none luks\n"}
    )
    mapped, table = apply_mapping(layout, {"/dev/vda": "/dev/sdb"})
    links = new_links(tmp_path, {"by-id/ata-NEW_SERIAL": "sdb", "by-id/wwn-0x5000c500": "sdb"})
    rewrite_references(mapped, target, table, {}, links)
    assert (target / "etc/crypttab").read_text() == (
        "root /dev/disk/by-id/ata-NEW_SERIAL-part3 none luks\n"
    )


def test_the_same_link_on_the_same_disk_stays(tmp_path: Path) -> None:
    """Mapped by name onto vda again, but a by-id link still naming the mapped disk stays."""
    target = write_files(tmp_path / "t", {"etc/fstab": f"{OLD_ID}-part1 /boot ext4 defaults 0 2\n"})
    mapped, table = apply_mapping(saved_layout(), {"/dev/vda": "/dev/vdc"})
    links = new_links(
        tmp_path, {"by-id/virtio-SRC0001": "vdc", "by-id/virtio-SRC0001-part1": "vdc1"}
    )
    result = rewrite_references(mapped, target, table, {}, links)
    assert (target / "etc/fstab").read_text() == f"{OLD_ID}-part1 /boot ext4 defaults 0 2\n"
    assert result.notes == [
        "device names: no restored configuration file names a changed device or UUID"
    ]


def test_another_disk_under_the_old_name_gets_its_own_by_id_name(tmp_path: Path) -> None:
    """vda is replaced by another virtio disk, also vda: the mapping is the identity, but
    the old serial's name is gone and udev names the new disk; without udev's names it stays."""
    restored = {"etc/fstab": f"{OLD_ID}-part1 /boot ext4 defaults 0 2\n/dev/vda2 none swap\n"}
    target = write_files(tmp_path / "t", restored)
    rewrite_references(saved_layout(), target, {}, {}, {})  # no /dev/disk links at all
    assert (target / "etc/fstab").read_text() == restored["etc/fstab"]
    links = new_links(
        tmp_path, {"by-id/virtio-NEW0002": "vda", "by-id/virtio-NEW0002-part1": "vda1"}
    )
    rewrite_references(saved_layout(), target, {}, {}, links)
    assert (target / "etc/fstab").read_text() == (
        "/dev/disk/by-id/virtio-NEW0002-part1 /boot ext4 defaults 0 2\n/dev/vda2 none swap\n"
    )


def test_p_rule_the_other_way_nvme_to_sata(tmp_path: Path) -> None:
    layout = saved_layout()
    for disk in layout.disks:
        disk.path = disk.path.replace("/dev/vda", "/dev/nvme0n1")
        for part in disk.partitions:
            part.path = part.path.replace("/dev/vda", "/dev/nvme0n1p")
    target = write_files(tmp_path / "t", {"etc/fstab": "/dev/nvme0n1p2 none swap sw 0 0\n"
                                          "/dev/nvme0n1p9 /x ext4 noauto 0 0\n"})  # fmt: skip
    mapped, table = apply_mapping(layout, {"/dev/nvme0n1": "/dev/sda"})
    rewrite_references(mapped, target, table, {}, {})
    assert (target / "etc/fstab").read_text() == (
        "/dev/sda2 none swap sw 0 0\n/dev/sda9 /x ext4 noauto 0 0\n"  # p9: not in the layout
    )


def test_nothing_mapped_nothing_changed_nothing_read(tmp_path: Path) -> None:
    target = write_files(tmp_path / "t", RESTORED)
    result = rewrite_references(saved_layout(), target, {}, {}, {})
    assert result.grub_reasons == [] and result.initramfs_reasons == []
    for name, text in RESTORED.items():
        assert (target / name).read_text() == text


NEW_BOOT = "11111111-2222-4333-8444-555555555555"
NEW_MD = "0f0e0d0c-0b0a-0908-0706-050403020100"


def test_a_changed_uuid_is_replaced_everywhere_in_its_spelling(
    tmp_path: Path, recover_report: Path
) -> None:
    files = {
        "etc/fstab": f"UUID={BOOT.upper()} /boot ext4 defaults 0 2\n"
        f"/dev/disk/by-uuid/{BOOT} /boot2 ext4 noauto 0 0\nUUID={SWAP} none swap sw 0 0\n",
        "etc/mdadm/mdadm.conf": f"ARRAY /dev/md0 metadata=1.2 UUID={MD} name=host:0\n",
        "etc/default/grub": f'GRUB_CMDLINE_LINUX="resume=UUID={BOOT}"\n',
        "boot/grub/grub.cfg": f"search --no-floppy --fs-uuid --set=root {BOOT}\n",
    }
    target = write_files(tmp_path / "t", files)
    probed = {"/dev/vda1": NEW_BOOT, "/dev/vda2": SWAP, "/dev/vdb1": NEW_MD, "/dev/vda3": LUKS}
    changes = uuid_changes(saved_layout(), probed.get)
    assert changes == {BOOT.replace("-", ""): NEW_BOOT, MD.replace(":", ""): NEW_MD}

    result = rewrite_references(saved_layout(), target, {}, changes, {})
    assert (target / "etc/fstab").read_text() == (
        f"UUID={NEW_BOOT.upper()} /boot ext4 defaults 0 2\n"
        f"/dev/disk/by-uuid/{NEW_BOOT} /boot2 ext4 noauto 0 0\nUUID={SWAP} none swap sw 0 0\n"
    )
    assert (target / "etc/mdadm/mdadm.conf").read_text() == (
        "ARRAY /dev/md0 metadata=1.2 UUID=0f0e0d0c:0b0a0908:07060504:03020100 name=host:0\n"
    )
    assert NEW_BOOT in (target / "etc/default/grub").read_text()
    assert (target / "boot/grub/grub.cfg").read_text() == files["boot/grub/grub.cfg"]
    assert any("grub.cfg names" in r for r in result.grub_reasons)
    assert f"UUID {BOOT} is now {NEW_BOOT}" in result.initramfs_reasons
    assert len(report.section("uuid", recover_report)) == 2
    assert len(report.section("rewrite", recover_report)) == 5  # 2 fstab, mdadm, grub, grub.cfg


@pytest.mark.parametrize(
    ("token", "new", "expected"),
    [
        ("ABCD-1234", "1a2b3c4d", "1A2B-3C4D"),  # a FAT volume id
        ("a1b2c3d4:e5f60718:293a4b5c:6d7e8f90", NEW_MD, "0f0e0d0c:0b0a0908:07060504:03020100"),
        ("unrelated", NEW_MD, "unrelated"),
    ],
)
def test_respell(token: str, new: str, expected: str) -> None:
    uuids = {"abcd1234": new, "a1b2c3d4e5f60718293a4b5c6d7e8f90": new}
    assert respell(token, uuids) == expected


def test_finalize_rewrites_first_then_regenerates_for_the_reasons(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, recover_report: Path
) -> None:
    """The finalize entry point: names rewritten before the boot loader, grub-mkconfig for
    the rewritten command line, update-initramfs for the rewritten crypttab and the driver."""
    import contextlib

    from rescue_runtime.recover import finalize as finalize_module
    from rescue_runtime.recover import finalize_boot, finalize_rewrite, finalize_system
    from rescue_runtime.recover.finalize_network import NicMapping
    from rescue_runtime.run import Result

    target = write_files(tmp_path / "target", RESTORED)
    for program in ("usr/sbin/update-initramfs", "usr/sbin/grub-mkconfig"):
        write_files(target, {program: "#!/bin/sh\n"})
    calls: list[list[str]] = []

    def fake_run(argv: list[str], **kwargs: object) -> Result:
        calls.append([str(a) for a in argv])
        return Result([str(a) for a in argv], 0, "", "")

    for module in (finalize_boot, finalize_system, finalize_rewrite):
        monkeypatch.setattr(module, "run", fake_run)
    monkeypatch.setattr(finalize_module, "bound", lambda t, say: contextlib.nullcontext())
    monkeypatch.setattr(finalize_module, "install_boot_loader", lambda layout, t: ["grub"])
    monkeypatch.setattr(finalize_module, "present_nics", lambda: [])
    monkeypatch.setattr(finalize_rewrite, "live_links", lambda: {})  # not the host's /dev
    monkeypatch.setattr(
        finalize_module, "driver_reasons", lambda layout, t, renamed: (["lacks nvme"], [])
    )
    layout = saved_layout()
    layout.luks = []  # no temporary key to replace here
    mapped, table = apply_mapping(layout, {"/dev/vda": "/dev/nvme0n1", "/dev/vdb": "/dev/sda"})
    request = finalize_module.FinalizeRequest(
        layout=mapped, target=target, key_dir=tmp_path / "keys", logs=[], ask=None,
        changed=[], mapped=table, nics=NicMapping(),
    )  # fmt: skip
    notes = finalize_module.finalize(request)

    assert notes[0].startswith("rewritten /etc/fstab:")
    assert "/dev/vda2" not in (target / "etc/fstab").read_text()
    blkid = [c for c in calls if c[0] == "blkid"]
    assert {c[-1] for c in blkid} == {"/dev/nvme0n1p1", "/dev/nvme0n1p2", "/dev/mapper/root",
                                      "/dev/sda1"}  # fmt: skip
    assert ["chroot", str(target), "/usr/sbin/grub-mkconfig", "-o", "/boot/grub/grub.cfg"] in calls
    assert ["chroot", str(target), "update-initramfs", "-u", "-k", "all"] in calls
    rebuilt = next(n for n in notes if n.startswith("initramfs rebuilt"))
    assert "/etc/crypttab rewritten" in rebuilt and "lacks nvme" in rebuilt
    assert len(report.section("rewrite", recover_report)) == 17
    (decision,) = report.section("initramfs", recover_report)
    assert decision.startswith("initramfs rebuilt with update-initramfs: /etc/crypttab rewritten")
    (grub,) = report.section("grub", recover_report)
    assert grub.startswith("grub-mkconfig wrote /boot/grub/grub.cfg: /etc/default/grub")
