"""Disk layout capture on real device-mapper, MD RAID, LUKS, LVM and btrfs stacks.

Device-mapper does not work on the build machine, so one rescue guest (built with
tests/data/recipes/vm-storage.yaml) gets six blank disks; the stacks are built inside it,
mounted under /srv, and `mkmedia layout save` / `show --json` / `checklayout` run there, with
the rescue system's configuration (AUTOEXCLUDE_PATH's default among it). The verdicts
compare the capture with what the commands of tests/vm/storage.py (STEPS) created (sizes,
UUIDs, names).

Disks: vda GPT + LVM (ext4, xfs, swap); vdb and vdc MBR with logical partitions, an ESP on
each first partition (the one on vdc a copy, not mounted), a RAID1 of their fifth
partitions, LUKS2 on it, LVM inside; vdd (whole disk) and the NVMe disk's second partition
one VG with a thin pool and thin volumes, a striped and a raid1 LV; the NVMe disk's first
partition btrfs with subvolumes and a default subvolume; vde a job disk mounted under /mnt,
which AUTOEXCLUDE_PATH leaves out.
"""

from __future__ import annotations

import binascii
import hashlib
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mkmedia.qemu import Guest
from rescue_runtime.layout.model import Layout
from rescue_runtime.layout.serial import from_json
from tests.layout_checks import CHECKS
from tests.rescue_build import REPO
from tests.vm import storage
from tests.vm.storage import STEP_TIMEOUT, fetch, sh

pytestmark = pytest.mark.vm

REPLAY_DIR = REPO / "tests" / "data" / "layout" / "guest"
# Set to a file name to re-record the replay data (guest/replay.json) from this guest.
RECORD_ENV = "MKMEDIA_LAYOUT_RECORD"


def record_replay(guest: Guest, target: Path) -> None:
    """Run tests/data/layout/guest/record.py in the guest and bring its replay.json out
    (zlib + hex through the console: the rescue Python has zlib and binascii, not base64)."""
    script = binascii.hexlify(zlib.compress((REPLAY_DIR / "record.py").read_bytes(), 9))
    sh(
        guest,
        'python3 -c \'import binascii,sys,zlib; open("/tmp/record.py","wb").write('
        f"zlib.decompress(binascii.unhexlify(sys.argv[1])))' {script.decode()} "
        "&& python3 /tmp/record.py /tmp/replay.json",
        "record.py",
    )
    digest = sh(guest, "sha256sum /tmp/replay.json").split()[0]
    hexed = sh(
        guest,
        "python3 -c 'import binascii,zlib; h=binascii.hexlify(zlib.compress(open("
        '"/tmp/replay.json","rb").read(), 9)).decode(); '
        "[print(h[i:i+100]) for i in range(0, len(h), 100)]'",
    )
    data = zlib.decompress(binascii.unhexlify("".join(hexed.split())))
    assert hashlib.sha256(data).hexdigest() == digest, "console mangled replay.json"
    target.write_bytes(data)


@dataclass
class Stacks:
    guest: Guest
    layout: Layout
    save_output: str


media = storage.media_fixture("storage-media")


@pytest.fixture(scope="module")
def stacks(media: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stacks]:
    tmp = tmp_path_factory.mktemp("layout-guest")
    disks, nvme = storage.STORAGE_DISKS, storage.STORAGE_NVME
    with storage.built_guest(
        media, tmp, disks, storage.STEPS, nvme=nvme, deadline=3600, name="storage"
    ) as guest:
        save = sh(guest, "mkmedia layout save --dir /tmp/layout", "layout save")
        sh(guest, "mkmedia layout show --json --dir /tmp/layout > /tmp/shown.json")
        layout = from_json(fetch(guest, "/tmp/shown.json"), source="the guest's layout")
        if os.environ.get(RECORD_ENV):
            record_replay(guest, Path(os.environ[RECORD_ENV]))
        yield Stacks(guest, layout, save)


def test_save_reports_no_missing_tools(stacks: Stacks) -> None:
    assert "layout saved to /tmp/layout" in stacks.save_output
    # Every layer's tool ran: a missing one would leave a "not installed" note.
    assert not [n for n in stacks.layout.notes if "not installed" in n], stacks.layout.notes


@pytest.mark.parametrize("stack", sorted(CHECKS))
def test_stack_captured(stacks: Stacks, stack: str) -> None:
    CHECKS[stack](stacks.layout)


def test_checklayout_unchanged_lv_grown_partition_added(stacks: Stacks) -> None:
    """Against the layout the fixture saved: 0 while nothing changed, then 1 with the
    readable difference after each change (one test: the changes accumulate in the guest)."""
    guest = stacks.guest
    status, out = guest.shell("mkmedia checklayout --dir /tmp/layout", STEP_TIMEOUT)
    assert status == 0 and "layout unchanged" in out, out
    sh(guest, "lvm_q lvextend -L +8M vggpt/root")
    status, out = guest.shell("mkmedia checklayout --dir /tmp/layout", STEP_TIMEOUT)
    assert status == 1, out
    grown = "changed: lv:vggpt/root size: 104857600 (100.0 MiB) -> 113246208 (108.0 MiB)"
    assert grown in out, out
    sh(guest, "sgdisk -n 3:0:+8MiB -t 3:8300 /dev/vda >/dev/null && udevadm settle")
    status, out = guest.shell("mkmedia checklayout --dir /tmp/layout", STEP_TIMEOUT)
    assert status == 1, out
    assert "added: part:/dev/vda3" in out and grown in out, out


def test_unmounted_lv_is_kept_and_checklayout_names_it(stacks: Stacks) -> None:
    """An LV nothing mounts (a raw database volume, a VM's disk) must not be lost: a new one
    is a difference, and a fresh capture keeps it, marked unmounted."""
    guest = stacks.guest
    sh(guest, "lvm_q lvcreate -y -n probe -L 8M vggpt")
    status, out = guest.shell("mkmedia checklayout --dir /tmp/layout", STEP_TIMEOUT)
    assert status == 1 and "added: lv:vggpt/probe" in out, out
    shown = sh(
        guest,
        "mkmedia layout show --current --json | python3 -c 'import json,sys; "
        '[print("unmounted", lv["vg"] + "/" + lv["name"]) for lv in json.load(sys.stdin)["lvs"]'
        ' if lv["unmounted"]]\'',
    )
    assert [line for line in shown.splitlines() if line.startswith("unmounted")] == [
        "unmounted vggpt/probe"
    ], shown
