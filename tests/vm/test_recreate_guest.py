"""The recreate script rebuilds real stacks from their saved layout, also after a failure.

One rescue guest (tests/data/recipes/vm-storage.yaml, the layout guest's disks) gets the
layout guest's stacks (GPT + LVM with ext4/xfs/swap, MBR with logical partitions, MD RAID1 +
LUKS2 + LVM, thin/striped/raid1 LVs, btrfs with nested subvolumes and a default one) plus a
vfat ESP; `mkmedia layout save` keeps the layout; everything is torn down and the disks
wiped (signatures, first and last MiB); `mkmedia layoutonly` recreates it under /mnt/local
and the layout captured again (`--root /mnt/local`) must equal the saved one. Then the same
from blank disks with an edited script that fails right after the MD array: a second run
continues (the finished components are skipped) and the result is again equal.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mkmedia.qemu import Guest
from rescue_runtime.layout.compare import compare
from rescue_runtime.layout.model import Layout
from rescue_runtime.layout.serial import from_json
from tests.vm import storage
from tests.vm.storage import fetch, sh

pytestmark = pytest.mark.vm

ESP_VOLUME_ID = "1234-ABCD"
RUN_TIMEOUT = 1800  # software emulation: mkfs, LVM and LUKS of a dozen components
DISKS = ("vda", "vdb", "vdc", "vdd", "nvme0n1")

ESP_STEP = (
    "ESP on vda",
    "sgdisk -n 3:0:+32MiB -t 3:ef00 -c 3:esp /dev/vda >/dev/null && udevadm settle "
    f"&& mkfs.vfat -F 16 -i {ESP_VOLUME_ID.replace('-', '')} -n ESP /dev/vda3 >/dev/null",
)
MOUNT_ESP = (
    "mount the ESP",
    "mkdir -p /srv/gpt/esp && { mount /dev/vda3 /srv/gpt/esp || { dmesg | tail -n 5; false; }; }",
)

# Everything down, then signatures off every partition and disk and the first and last
# MiB of each disk zeroed: the script must not find anything of the old stacks.
WIPE_DISKS = " && ".join(
    f"wipefs -a -q /dev/{d} && dd if=/dev/zero of=/dev/{d} bs=1M count=1 status=none "
    f"&& dd if=/dev/zero of=/dev/{d} bs=512 count=2048 status=none "
    f"seek=$(( $(blockdev --getsz /dev/{d}) - 2048 ))"
    for d in DISKS
)
TEARDOWN = (
    # The stacks are mounted below /srv (recreated: below /mnt/local); the job disk below /mnt
    # (AUTOEXCLUDE_PATH: not in the layout) stays as it is.
    "findmnt -rn -o TARGET | grep -E '^/(srv|mnt/local)(/|$)' | sort -r | xargs -r umount "
    "&& swapoff -a && lvm_q vgchange -q -an >/dev/null "
    "&& wipefs -a -q /dev/mapper/secure && cryptsetup close secure "
    "&& wipefs -a -q /dev/md0 && mdadm --stop -q /dev/md0 "
    "&& wipefs -a -q /dev/vda? /dev/vdb? /dev/vdc? /dev/nvme0n1p? "
    f"&& {WIPE_DISKS} && udevadm settle && ! ls /dev/vda1 /dev/vdb5 /dev/nvme0n1p1 2>/dev/null"
)
STATE = "/var/lib/mkmedia/recreate"


@dataclass
class Recreated:
    guest: Guest
    saved: Layout
    script: str  # the script's path in the guest


def layout_in_guest(guest: Guest, directory: str, *, root: str = "/") -> Layout:
    sh(guest, f"mkmedia layout save --dir {directory} --root {root} >/dev/null", "layout save")
    sh(guest, f"mkmedia layout show --json --dir {directory} > {directory}.json")
    return from_json(fetch(guest, f"{directory}.json"), source=f"the guest's {directory}")


def recreated_layout(guest: Guest, directory: str) -> Layout:
    # The restore stage turns swap on; the capture keeps what mounts and active swap use.
    sh(guest, "swapon /dev/mapper/vggpt-swap")
    return layout_in_guest(guest, directory, root="/mnt/local")


media = storage.media_fixture("recreate-media")


@pytest.fixture(scope="module")
def recreated(media: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recreated]:
    tmp = tmp_path_factory.mktemp("recreate-guest")
    # the layout guest's stacks and disks (vde its job disk, mounted below /mnt) and an ESP
    steps = list(storage.STEPS)
    steps.insert(2, ESP_STEP)
    disks, nvme = storage.STORAGE_DISKS, storage.STORAGE_NVME
    with storage.built_guest(
        media, tmp, disks, [*steps, MOUNT_ESP], nvme=nvme, deadline=5400, name="recreate"
    ) as guest:
        saved = layout_in_guest(guest, "/tmp/layout1")
        sh(guest, TEARDOWN, "tear down and wipe", RUN_TIMEOUT)
        out = run_layoutonly(guest, "")
        script = re.search(r"recreate script: (\S+)", out)
        assert script, out
        yield Recreated(guest, saved, script.group(1))


def run_layoutonly(guest: Guest, options: str) -> str:
    status, out = guest.shell(
        f"mkmedia layoutonly --dir /tmp/layout1 {options} > /tmp/layoutonly.out 2>&1; "
        "s=$?; grep -m 1 '^recreate script: ' /tmp/layoutonly.out; tail -n 40 /tmp/layoutonly.out; "
        "(exit $s)",
        RUN_TIMEOUT,
    )
    assert status == 0, f"mkmedia layoutonly {options} failed ({status}):\n{out}"
    return out


def test_saved_layout_has_every_stack(recreated: Recreated) -> None:
    saved = recreated.saved
    esp = saved.filesystem("/dev/vda3")
    assert esp is not None and (esp.fstype, esp.uuid, esp.fat_size) == ("vfat", ESP_VOLUME_ID, 16)
    assert [m.path for m in saved.mds] == ["/dev/md0"] and [x.name for x in saved.luks] == [
        "secure"
    ]
    assert {v.name for v in saved.vgs} == {"vggpt", "vgsec", "vgthin"}
    assert not [n for n in saved.notes if "not installed" in n], saved.notes


def test_recreated_layout_equals_saved(recreated: Recreated) -> None:
    again = recreated_layout(recreated.guest, "/tmp/layout2")
    assert compare(recreated.saved, again) == []
    # The same verdict from the product's own command, against the saved layout.
    status, out = recreated.guest.shell(
        "mkmedia checklayout --dir /tmp/layout1 --root /mnt/local", RUN_TIMEOUT
    )
    assert status == 0 and "layout unchanged" in out, out


def test_interrupted_script_continues(recreated: Recreated) -> None:
    guest = recreated.guest
    sh(guest, TEARDOWN, "tear down and wipe again", RUN_TIMEOUT)
    # A copy that fails right after the MD array exists; the state of the first run goes.
    broken = "/tmp/recreate-broken.sh"
    sh(
        guest,
        f"rm -rf {STATE}/state-* && sed '/^# --- LUKS2 /i false' {recreated.script} > {broken}",
    )
    status, out = guest.shell(
        f"bash {broken} > /tmp/broken.out 2>&1; s=$?; tail -n 5 /tmp/broken.out; (exit $s)",
        RUN_TIMEOUT,
    )
    assert status != 0, out
    assert "recreate: FAILED in md:/dev/md0" in out, out
    status, out = guest.shell(f"ls {STATE}/state-*/", RUN_TIMEOUT)
    assert "md__dev_md0" in out and "luks" not in out, out
    out = run_layoutonly(guest, "")
    status, log = guest.shell("grep '^recreate: ' /tmp/layoutonly.out", RUN_TIMEOUT)
    assert "recreate: md:/dev/md0 was finished before, skipped" in log, log
    assert "recreate: disk:/dev/vda was finished before, skipped" in log, log
    assert "recreate: luks:/dev/mapper/secure\n" in log, log
    again = recreated_layout(guest, "/tmp/layout3")
    assert compare(recreated.saved, again) == []
