"""LVM's devices file follows the PVs onto new disks: an entry naming a gone disk's serial or
an old device name is rewritten to the PV's device now, content ids and unknown PVs stay."""

from __future__ import annotations

from pathlib import Path

from rescue_runtime.layout.model import Layout, PhysicalVolume
from rescue_runtime.recover import finalize_lvmdevices
from tests.files import write_file

PV_A = "tGz6d3-G7g0-4VVE-cjeu-AtKy-u4V9-UHnfYZ"
PV_B = "87NNIZ-ed8B-uOCW-C61k-ZhT0-a7H1-B0R6IG"
PV_C = "Xq1mA9-0000-1111-2222-3333-4444-555566"
HEAD = "# LVM uses devices listed in this file.\nVERSION=1.1.4\n"


def pvid(uuid: str) -> str:
    return uuid.replace("-", "")


def layout() -> Layout:
    return Layout(
        pvs=[
            PhysicalVolume(device="/dev/nvme0n1p2", uuid=PV_A),
            PhysicalVolume(device="/dev/mapper/cryptpv", uuid=PV_B),
            PhysicalVolume(device="/dev/vdb1", uuid=PV_C),
        ]
    )


def ids(device: str) -> set[str]:
    """sysfs of the new machine: the NVMe disk has another serial, vdb kept its own."""
    return {"/dev/nvme0n1p2": {"newserial"}, "/dev/vdb1": {"oldserialb"}}.get(device, set())


def test_stale_disk_ids_are_rewritten_to_the_device_now(tmp_path: Path) -> None:
    lines = [
        f"IDTYPE=sys_wwid IDNAME=naa.5000c500deadbeef DEVNAME=/dev/sda2 PVID={pvid(PV_A)} PART=2",
        f"IDTYPE=crypt_uuid IDNAME=CRYPT-LUKS2-abc-cryptpv DEVNAME=/dev/dm-0 PVID={pvid(PV_B)}",
        f"IDTYPE=sys_serial IDNAME=OLD_SERIAL_B DEVNAME=/dev/vdb1 PVID={pvid(PV_C)}",
        "IDTYPE=sys_serial IDNAME=x DEVNAME=/dev/vdc1 PVID=someoneelse0000000000000000000000",
    ]
    path = write_file(
        tmp_path / finalize_lvmdevices.DEVICES_FILE, HEAD + "\n".join(lines) + "\n", mode=0o600
    )
    changed = finalize_lvmdevices.rewrite_devices_file(layout(), tmp_path, ids)
    new = f"IDTYPE=devname IDNAME=/dev/nvme0n1p2 DEVNAME=/dev/nvme0n1p2 PVID={pvid(PV_A)}"
    assert changed == [(lines[0], new)]
    # vdb kept its serial (LVM's spelling: underscores, any case); the crypt id names content
    assert path.read_text() == HEAD + "\n".join([new, *lines[1:]]) + "\n"
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_devname_entry_follows_a_renamed_device(tmp_path: Path) -> None:
    line = f"IDTYPE=devname IDNAME=/dev/vda2 DEVNAME=/dev/vda2 PVID={pvid(PV_A)}"
    write_file(tmp_path / finalize_lvmdevices.DEVICES_FILE, line + "\n")
    ((before, after),) = finalize_lvmdevices.rewrite_devices_file(layout(), tmp_path, ids)
    assert before == line
    assert "IDNAME=/dev/nvme0n1p2 DEVNAME=/dev/nvme0n1p2" in after
    # run again: nothing left to change
    assert finalize_lvmdevices.rewrite_devices_file(layout(), tmp_path, ids) == []


def test_no_devices_file_is_no_change(tmp_path: Path) -> None:
    assert finalize_lvmdevices.rewrite_devices_file(layout(), tmp_path, ids) == []


def test_disk_ids_read_the_whole_disks_serial_for_a_partition(tmp_path: Path) -> None:
    disk = tmp_path / "devices" / "vda"
    write_file(disk / "serial", "SERIAL-1 \n")
    (disk / "vda2").mkdir()
    write_file(disk / "vda2" / "partition", "2\n")
    (tmp_path / "vda2").symlink_to(disk / "vda2")
    assert finalize_lvmdevices.disk_ids("/dev/vda2", sys_block=tmp_path) == {"serial-1"}
