"""A saved layout recreated on fewer and smaller disks, with real parted, mdadm and LVM in
one storage guest: a RAID1 pair (vda + vdb, ext4 on md0) onto one smaller disk (vdd), the
array degraded, and a GPT + LVM disk (vdc: /boot-like ext4, a VG with an ext4 root and
swap) onto a smaller disk (vde), partitions, VG and LVs shrunk within what the file systems
used. The product's own verify steps plan it (the mapping file, the used bytes the backup
would record, the original disks held as the backup's and so never targets); the recreate
script writes it; the results (sizes, UUIDs, the degraded array, the GPT backup header) are
read from inside the guest and compared with the plan and the saved layout.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from mkmedia.qemu import Guest
from rescue_runtime.layout.model import Layout
from rescue_runtime.layout.serial import from_json
from tests.layout_checks import MD_UUID, PV_UUID, fs_uuid
from tests.vm import storage
from tests.vm.storage import LVM, fetch, sh

pytestmark = pytest.mark.vm

MiB = 1 << 20
# vda vdb: the RAID1 pair; vdc: the LVM disk; vdd, vde: the smaller targets (MiB)
DISKS = (256, 256, 512, 160, 320)
RUN_TIMEOUT = 900

SOURCE = [
    ("quiet console", f"set +H; dmesg -n 1; {LVM}"),
    (
        "RAID1 on vda2 + vdb2, LVM disk vdc",
        "for d in vda vdb; do sgdisk -Z -n 1:1MiB:+1MiB -t 1:ef02 -n 2:0:0 -t 2:fd00 /dev/$d "
        ">/dev/null || exit 1; done "
        "&& sgdisk -Z -n 1:1MiB:+64MiB -t 1:8300 -n 2:0:0 -t 2:8e00 /dev/vdc >/dev/null "
        "&& udevadm settle "
        "&& mdadm --create /dev/md0 --run --level=1 --raid-devices=2 --metadata=1.2 "
        f"--uuid={MD_UUID} --name=mirror --assume-clean /dev/vda2 /dev/vdb2 "
        f"&& mkfs.ext4 -q -U {fs_uuid(1)} /dev/md0 "
        f"&& mkfs.ext4 -q -U {fs_uuid(2)} /dev/vdc1 "
        f"&& lvm_q pvcreate --uuid {PV_UUID} --norestorefile /dev/vdc2 "
        "&& lvm_q vgcreate -s 4M vgs /dev/vdc2 "
        "&& lvm_q lvcreate -y -n root -L 300M vgs && lvm_q lvcreate -y -n swap -L 64M vgs "
        f"&& mkfs.ext4 -q -U {fs_uuid(3)} /dev/vgs/root "
        f"&& mkswap -U {fs_uuid(4)} /dev/vgs/swap >/dev/null",
    ),
    (
        "mounts and data",
        "mkdir -p /srv/r /srv/b /srv/l && mount /dev/md0 /srv/r && mount /dev/vdc1 /srv/b "
        "&& mount /dev/vgs/root /srv/l && swapon /dev/vgs/swap "
        "&& head -c 20M /dev/urandom > /srv/r/data && head -c 30M /dev/urandom > /srv/l/data "
        "&& sync",
    ),
]
TEARDOWN = (
    "findmnt -rn -o TARGET | grep -E '^/(srv|mnt/local)(/|$)' | sort -r | xargs -r umount "
    "&& swapoff -a && lvm_q vgchange -q -an >/dev/null && mdadm --stop -q /dev/md0 "
    "&& wipefs -a -q /dev/vda2 /dev/vdb2 /dev/vdc1 /dev/vdc2 /dev/vda /dev/vdb /dev/vdc "
    "&& udevadm settle"
)
# What the backup records (backup/manifest.py), taken while the file systems are mounted.
USED = """
import json
from rescue_runtime.backup.manifest import used_bytes_by_filesystem
from rescue_runtime.backup.sources import plan_backup
from rescue_runtime.layout import store
layout = store.load("/tmp/saved")
used = used_bytes_by_filesystem(plan_backup(layout).sources)
open("/tmp/used.json", "w").write(json.dumps(used))
"""
# verify's own steps; the original disks are where the backup is, so never targets.
PLAN = """
import json
from rescue_runtime import rescueconf
from rescue_runtime.layout.serial import to_json
from rescue_runtime.recover import verify
from rescue_runtime.recover.ask import Asker
from rescue_runtime.recover.context import RecoverContext, RecoverOptions
ctx = RecoverContext(
    options=RecoverOptions("/tmp/saved", "/mnt/local", "/tmp/rc", unattended=True),
    config=rescueconf.RescueConfig(hostname="shrink"),
    ask=Asker(unattended=True),
    stages=("verify", "recreate"),
)
verify.load_layout(ctx)
ctx.manifest = {"used_bytes": json.load(open("/tmp/used.json"))}
ctx.protected = {"/dev/vda", "/dev/vdb", "/dev/vdc"}
verify.map_disks(ctx)
verify.plan_recreate(ctx)
open("/tmp/planned.json", "w").write(to_json(ctx.layout))
print("SCRIPT", ctx.script)
"""


def python_in_guest(guest: Guest, source: str, what: str) -> str:
    encoded = base64.b64encode(source.encode()).decode()
    return sh(
        guest,
        "python3 -c 'import base64,sys; exec(base64.b64decode(sys.argv[1]))' " + encoded,
        what,
        RUN_TIMEOUT,
    )


media = storage.media_fixture("shrink-media")


@pytest.fixture(scope="module")
def shrunk(
    media: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Guest, Layout, Layout]]:
    tmp = tmp_path_factory.mktemp("shrink-guest")
    with storage.built_guest(media, tmp, DISKS, SOURCE, deadline=1800, name="shrink") as guest:
        sh(guest, "mkmedia layout save --dir /tmp/saved --root / >/dev/null", "layout save")
        sh(guest, "mkmedia layout show --json --dir /tmp/saved > /tmp/saved.json")
        saved = from_json(fetch(guest, "/tmp/saved.json"), source="the saved layout")
        python_in_guest(guest, USED, "the used bytes")
        sh(guest, TEARDOWN, "tear down", RUN_TIMEOUT)
        sh(
            guest,
            "mkdir -p /etc/mkmedia/mappings "
            "&& printf '/dev/vda /dev/vdd\\n/dev/vdc /dev/vde\\n' > /etc/mkmedia/mappings/disks",
        )
        out = python_in_guest(guest, PLAN, "verify's disk mapping and resize plan")
        script = out.split("SCRIPT ", 1)[1].split()[0]
        planned = from_json(fetch(guest, "/tmp/planned.json"), source="the planned layout")
        status, log = guest.shell(
            f"TARGET=/mnt/local bash {script} > /tmp/recreate.out 2>&1; s=$?; "
            "tail -n 30 /tmp/recreate.out; (exit $s)",
            RUN_TIMEOUT,
        )
        assert status == 0, f"the recreate script failed ({status}):\n{log}"
        yield guest, saved, planned


def test_raid1_onto_one_smaller_disk_runs_degraded_with_its_uuids(
    shrunk: tuple[Guest, Layout, Layout],
) -> None:
    guest, saved, planned = shrunk
    (md,) = planned.mds
    assert md.members == ["/dev/vdd2"] and md.missing == [1]
    detail = sh(guest, "mdadm --detail --export /dev/md0")
    fields = dict(line.split("=", 1) for line in detail.splitlines() if "=" in line)
    assert fields["MD_LEVEL"] == "raid1" and fields["MD_DEVICES"] == "2"
    assert fields["MD_UUID"] == MD_UUID
    assert "[2/1]" in sh(guest, "cat /proc/mdstat")  # one of two members: degraded
    assert sh(guest, "blkid -s UUID -o value /dev/md0").strip() == fs_uuid(1)
    size = int(sh(guest, "blockdev --getsize64 /dev/vdd2"))
    old = next(p for p in saved.partitions() if p.path == "/dev/vda2")
    assert size < old.size and size % MiB == 0
    assert sh(guest, "findmnt -rn -o SOURCE /mnt/local/srv/r").strip() == "/dev/md0"
    report = sh(guest, "cat /var/lib/mkmedia/recover-report.txt")
    assert "[raid] /dev/md0: slot 1 (/dev/vdb2) missing: created degraded" in report
    assert "[exclude] disk:/dev/vdb left out" in report


def test_lvm_onto_a_smaller_disk_is_shrunk_with_its_uuids(
    shrunk: tuple[Guest, Layout, Layout],
) -> None:
    guest, saved, planned = shrunk
    lvs = sh(guest, "lvm lvs --units b --nosuffix --noheadings -o lv_name,lv_size,lv_uuid vgs")
    found = {
        name: (int(size), uuid) for name, size, uuid in (ln.split() for ln in lvs.splitlines())
    }
    for name in ("root", "swap"):
        old, new = saved.lv(f"vgs/{name}"), planned.lv(f"vgs/{name}")
        assert old is not None and new is not None
        assert found[name] == (new.size, old.uuid)  # the planned size, the saved UUID
    root_old, root_new = saved.lv("vgs/root"), planned.lv("vgs/root")
    assert root_old is not None and root_new is not None and root_new.size < root_old.size
    used = json.loads(sh(guest, "cat /tmp/used.json"))
    assert root_new.size > used["fs:/dev/mapper/vgs-root"]  # never below what the data used
    assert sh(guest, "lvm pvs --noheadings -o pv_uuid /dev/vde2").strip() == PV_UUID
    assert sh(guest, "blkid -s UUID -o value /dev/vgs/root").strip() == fs_uuid(3)
    assert sh(guest, "blkid -s UUID -o value /dev/vgs/swap").strip() == fs_uuid(4)
    assert sh(guest, "blkid -s UUID -o value /dev/vde1").strip() == fs_uuid(2)
    # ext4 fills the smaller LV (not its old block count)
    blocks = sh(guest, "dumpe2fs -h /dev/vgs/root 2>/dev/null | grep '^Block count:'")
    block_size = sh(guest, "dumpe2fs -h /dev/vgs/root 2>/dev/null | grep '^Block size:'")
    assert int(blocks.split()[-1]) * int(block_size.split()[-1]) == root_new.size
    # the GPT's backup header sits at the smaller disk's end
    assert "No problems found" in sh(guest, "sgdisk -v /dev/vde")
    vde = [p for p in planned.partitions() if p.path.startswith("/dev/vde")]
    assert all(p.start % MiB == 0 and p.size % MiB == 0 for p in vde)
    assert max(p.start + p.size for p in vde) <= DISKS[4] * MiB - 34 * 512
