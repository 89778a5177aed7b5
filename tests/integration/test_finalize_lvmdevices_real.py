"""The real LVM agrees: a devices file entry naming a gone disk's serial hides the PV, and
after the rewrite LVM finds the PV on the device that holds it now (a PV on a loop device;
pvcreate and pvs need no device-mapper)."""

from __future__ import annotations

import os
from pathlib import Path

from rescue_runtime.layout.model import Layout, PhysicalVolume
from rescue_runtime.recover.finalize_lvmdevices import DEVICES_FILE, rewrite_devices_file
from rescue_runtime.run import run
from tests.files import write_file
from tests.loopfs import root_test_marks

pytestmark = root_test_marks(
    "loop devices need root", ("losetup", "pvcreate", "pvs"), "lvm2 (pvcreate, pvs) missing"
)


def listed_pvs(target: Path) -> list[str]:
    """The PVs LVM sees when the target's devices file is the one it uses."""
    env = {"LVM_SYSTEM_DIR": str(target / "etc/lvm")}
    out = run(
        ["pvs", "--config", "devices/use_devicesfile=1", "--noheadings", "-o", "pv_name"],
        env=env,
    ).stdout
    return out.split()


def test_lvm_finds_the_pv_after_the_rewrite(tmp_path: Path) -> None:
    image = tmp_path / "pv.img"
    run(["truncate", "-s", "16M", image])
    device = run(["losetup", "-f", "--show", image]).stdout.strip()
    try:
        # --devices: this test's loop device only, whatever the host's LVM would scan
        run(["pvcreate", "-qq", "-y", "--devices", device, device])
        uuid = run(["pvs", "--devices", device, "--noheadings", "-o", "pv_uuid", device])
        uuid = uuid.stdout.strip()
        pvid = uuid.replace("-", "")
        write_file(
            tmp_path / "target" / DEVICES_FILE,
            "VERSION=1.1.1\n"
            f"IDTYPE=sys_wwid IDNAME=naa.5000c500deadbeef DEVNAME=/dev/sdz2 PVID={pvid} PART=2\n",
        )
        target = tmp_path / "target"
        assert device not in listed_pvs(target)
        layout = Layout(pvs=[PhysicalVolume(device=device, uuid=uuid)])
        (change,) = rewrite_devices_file(layout, target)
        assert change[1] == f"IDTYPE=devname IDNAME={device} DEVNAME={device} PVID={pvid}"
        assert device in listed_pvs(target)
    finally:
        run(["losetup", "-d", device], check=False)
        os.unlink(image)
