"""Recovery onto other hardware (issue 12): one backup per source, recovered onto disks of
other sizes, on another controller, or refused before any write when it cannot fit.

Each test reuses its source's backup ISO (the session's `backups` fixture, shared with
test_recover_cycle.py), boots it on the replacement disks with nobody at the keyboard, and
boots what was recovered, where a job compares every file and piece of metadata with the
manifest taken at backup time (cycle.verify_from_inside). The storage identities (UUIDs,
labels, partition GUIDs) must be the source's; names and sizes are what the new disks make
them. What recover changed is read from its notes on the rescue console ("mkmedia recover:
...", the recovery report).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from mkmedia.qemu import Guest
from rescue_runtime.run import run
from tests.e2e import cycle, source
from tests.e2e.conftest import Backups, by_source
from tests.e2e.test_recover_cycle import state_diff
from tests.rescue_build import BOOT_TIMEOUT, PROMPT

pytestmark = [pytest.mark.vm, pytest.mark.e2e]

MiB = 1 << 20
NOTE = "mkmedia recover: "


def recovery_notes(console_log: Path) -> list[str]:
    """What recover said it did, one note per line, from the rescue system's console."""
    text = console_log.read_text(errors="replace").replace("\r", "")
    return [line.split(NOTE, 1)[1] for line in text.splitlines() if NOTE in line]


def identities(state: dict[str, object]) -> dict[str, object]:
    """A recovered machine's state (cyclejob.py state) without what a migration changes:
    device names (vda2 is nvme0n1p2 now) and sizes."""
    rows = []
    for row in state["lsblk"]:  # type: ignore[attr-defined]
        device = json.loads(row)
        device.pop("name")
        device.pop("size")
        rows.append(json.dumps(device, sort_keys=True))
    lvm = []
    for line in state["lvm"]:  # type: ignore[attr-defined]
        words = line.split()
        if len(words) == 6:  # lvs: lv_name vg_name lv_uuid lv_size segtype stripes
            del words[3]
        lvm.append(" ".join(words))
    return {**state, "lsblk": sorted(rows), "lvm": sorted(lvm)}


def sizes(state: dict[str, object]) -> dict[str, int]:
    """Bytes per device of the state's lsblk rows, by what stays across a migration: a
    partition by its PARTUUID, a disk by its partition table's id, the rest (MD, LUKS, LVs)
    by the UUID of what they hold, else their name. Disks without a partition table are
    left out."""
    found = {}
    for row in state["lsblk"]:  # type: ignore[attr-defined]
        device = json.loads(row)
        kind = device["type"]
        if kind == "disk" and not device["pttype"]:
            continue  # no partition table, in no layout here: the pc machine's floppy drive
        key = device["partuuid"] or (device["ptuuid"] if kind == "disk" else None)
        found[f"{kind} {key or device['uuid'] or device['name']}"] = int(device["size"])
    return found


# In the recovered machine: each file system's UUID, the size of the device it is on and the
# size df gives it.
FILL_CHECK = """
for m in {mounts}; do
    src=$(findmnt -n -o SOURCE "$m")
    echo "$m $(findmnt -n -o UUID "$m") $(blockdev --getsize64 "$src") \\
        $(df -B1 --output=size "$m" | tail -n 1)"
done > /run/job/fill.txt
"""
# df's size leaves out the file system's own metadata (inode tables, the journal, an xfs
# log): a few percent, up to about 11 % for a small ext4 with 1 KiB blocks.
FILL_RATIO = 0.85


# In the recovered machine: the recovery report finalize copied there (recover/report.py).
REPORT_COPY = "cp /var/log/mkmedia/recover-report.txt /run/job/recover-report.txt\n"
# The replacement machine's network card, and what the recovered machine calls it.
NEW_MAC = "52:54:00:6d:6d:01"
CARD_LINK = "/etc/systemd/network/10-lan0.link"  # the source's (tests/e2e/source.py)
CARD_CHECK = "cat /sys/class/net/lan0/address > /run/job/lan0.txt || true\n"


def report_sections(job: Path) -> dict[str, list[str]]:
    """The recovery report's notes by section ("[section] text" lines)."""
    sections: dict[str, list[str]] = {}
    for line in (job / "recover-report.txt").read_text().splitlines():
        if line.startswith("[") and "] " in line:
            section, text = line[1:].split("] ", 1)
            sections.setdefault(section, []).append(text)
    return sections


def filesystem_sizes(state: dict[str, object]) -> dict[str, int]:
    """File system UUID -> bytes of the device it is on, from the state's lsblk rows."""
    found = {}
    for row in state["lsblk"]:  # type: ignore[attr-defined]
        device = json.loads(row)
        if device["uuid"] and device["fstype"] not in ("LVM2_member", "crypto_LUKS"):
            found[device["uuid"]] = int(device["size"])
    return found


def fill(job: Path) -> dict[str, tuple[str, int, int]]:
    """mount point -> (file system UUID, device bytes, df bytes), from FILL_CHECK."""
    rows = {}
    for line in (job / "fill.txt").read_text().splitlines():
        mount, uuid, device, size = line.split()
        rows[mount] = (uuid, int(device), int(size))
    return rows


def assert_filesystems_fill(job: Path, state: dict[str, object]) -> None:
    """Every checked file system fills its grown device: df gives it more than the whole
    device it was on at backup time (`state`), and nearly all of the new one."""
    before = filesystem_sizes(state)
    for mount, (uuid, device, size) in fill(job).items():
        old = before[uuid]
        assert device > old, f"{mount}: its device did not grow ({old} -> {device} bytes)"
        assert size > old, f"{mount}: df gives {size} bytes, its old device had {old}"
        assert size >= FILL_RATIO * device, f"{mount}: df {size} of {device} bytes"


# What recover rewrites on purpose changes a file's content and times (and its directory's
# times, the rewrite is atomic): nothing else of it, and nothing else at all.
REWRITE_KEYS = ("mtime_ns", "sha256")
# treemanifest's difference line (the test data has paths with spaces)
CHANGED = re.compile(r"changed: (?P<path>/.*?) (?P<key>\w+): ")


def assert_verified(
    verdict: cycle.Verdict, state: dict[str, object], rewritten: tuple[str, ...] = ()
) -> None:
    """Every byte and all metadata came back, but for the files recover rewrote."""
    lines = verdict.differences.splitlines()
    differences = [x for x in lines if x.strip() and not x.startswith("treemanifest: ")]
    changes = [CHANGED.match(line) for line in differences]
    expected = [m for m in changes if m and m["path"] in rewritten and m["key"] in REWRITE_KEYS]
    assert verdict.rc in ((0, 1) if differences else (0,)), verdict.line
    assert len(expected) == len(differences), f"{verdict.line}\n{verdict.differences[:6000]}"
    # each rewritten file did change: the rewrite reached the recovered disk
    assert set(rewritten) <= {m["path"] for m in expected}, (rewritten, differences)
    assert identities(verdict.state) == identities(state), state_diff(
        identities(state), identities(verdict.state)
    )


@by_source("bios-lvm")
def test_bios_lvm_onto_one_larger_nvme_disk(tmp_path: Path, backups: Backups) -> None:
    """The BIOS + LVM machine onto one NVMe disk 50% larger than its virtio disk: two issue-12
    cases in one recovery cycle (larger disk, other controller), which saves a cycle of suite
    time. The disk is mapped as the one disk large enough (its serial differs), partitions
    and LVs grow proportionally and their file systems fill them, the restored system's
    references stay valid (its fstab names UUIDs only), the initramfs decision is logged, and
    the network card is another one too (its .link file follows the new MAC)."""
    machine, backup = backups("bios-lvm")
    (old_mib,) = machine.spec.disks_mib
    rescue_log, verdict = cycle.recover_and_verify(
        machine,
        backup,
        tmp_path,
        (old_mib * 3 // 2,),
        extra=REPORT_COPY + FILL_CHECK.format(mounts="/ /boot /data") + CARD_CHECK,
        interface="nvme",
        mac=NEW_MAC,
    )
    check_grown_onto_nvme(recovery_notes(rescue_log), verdict, backup.state)
    check_card_followed(verdict)


def check_card_followed(verdict: cycle.Verdict) -> None:
    """The source's .link file names its card by MAC (lan0): on the new card the rewritten
    file names the new MAC, so the recovered machine's card is lan0 again."""
    network = report_sections(verdict.job).get("network", [])
    old, link = source.SOURCE_MAC, CARD_LINK
    assert f"card {old} -> {NEW_MAC} (the one new card (" in " ".join(network), network
    assert f"{link}: 'MACAddress={old}' -> 'MACAddress={NEW_MAC}'" in network, network
    assert (verdict.job / "lan0.txt").read_text().strip() == NEW_MAC, network


def check_grown_onto_nvme(
    notes: list[str], verdict: cycle.Verdict, state: dict[str, object]
) -> None:
    """What test_bios_lvm_onto_one_larger_nvme_disk asserts once the recovered disk booted."""
    assert_verified(verdict, state, rewritten=(CARD_LINK, os.path.dirname(CARD_LINK)))
    before, after = sizes(state), sizes(verdict.state)
    assert before.keys() == after.keys(), (before, after)
    for key, old in before.items():
        assert after[key] >= old * 1.4, f"{key} did not grow by about half: {old} -> {after[key]}"
    assert_filesystems_fill(verdict.job, state)
    text = "\n".join(notes)
    assert "disk /dev/vda is recreated on /dev/nvme0n1 (the one disk large enough)" in notes, text
    for part in ("/dev/nvme0n1p1", "/dev/nvme0n1p2"):
        assert f"partition {part}: " in text, text
    for lv in ("vgsys/root", "vgsys/data", "vgsys/swap"):
        assert f"LV {lv}: " in text, text
    # fstab, grub.cfg and the initramfs name UUIDs and LVs only: nothing names the old disk
    assert "device names: no restored configuration file names a changed device or UUID" in (
        notes
    ), text
    report = report_sections(verdict.job)
    assert report.get("mapping") == ["/dev/vda -> /dev/nvme0n1 (the one disk large enough)"]
    assert "rewrite" not in report and "uuid" not in report, report
    assert len(report.get("resize", [])) >= 5, report  # two partitions, three LVs, ...
    # the initramfs decision: the nvme driver is in the restored one, so it is not rebuilt
    initramfs = report.get("initramfs", [])
    assert any(
        re.fullmatch(r"initramfs drivers: \S+ has nvme \(/dev/nvme0n1\)", n) for n in initramfs
    ), initramfs
    assert any(n.startswith("initramfs not rebuilt") for n in initramfs), initramfs


@by_source("bios-lvm")
def test_bios_lvm_onto_a_smaller_disk_that_holds_the_data(tmp_path: Path, backups: Backups) -> None:
    """The BIOS + LVM machine onto a virtio disk half the size of its own, yet larger than
    what its file systems used at backup time: partitions, LVs and file systems shrink within
    their data plus margin (the backup manifest's used_bytes), the machine boots and passes
    the compare."""
    machine, backup = backups("bios-lvm")
    manifest = backup_manifest(backup.iso)
    used = {fs["path"]: int(fs["used_bytes"]) for fs in manifest["filesystems"]}
    (old_mib,) = machine.spec.disks_mib
    new_mib = old_mib // 2
    assert 2 * sum(used.values()) < new_mib * MiB, f"the data ({used}) does not fit {new_mib} MiB"
    rescue_log, verdict = cycle.recover_and_verify(
        machine,
        backup,
        tmp_path,
        (new_mib,),
        extra=REPORT_COPY + FILL_CHECK.format(mounts=" ".join(used)),
    )
    check_shrunk(recovery_notes(rescue_log), verdict, backup.state, used, new_mib)


def check_shrunk(
    notes: list[str],
    verdict: cycle.Verdict,
    state: dict[str, object],
    used: dict[str, int],
    new_mib: int,
) -> None:
    """What test_bios_lvm_onto_a_smaller_disk_that_holds_the_data asserts once it booted."""
    assert_verified(verdict, state)
    before, after = sizes(state), sizes(verdict.state)
    assert before.keys() == after.keys(), (before, after)
    (disk,) = [key for key in after if key.startswith("disk ")]
    assert after[disk] == new_mib * MiB, after
    shrunk = [key for key in after if after[key] < before[key]]
    assert any(key.startswith("lvm ") for key in shrunk), (before, after)
    old_sizes = filesystem_sizes(state)
    for mount, (uuid, device, size) in fill(verdict.job).items():
        assert used[mount] < size and device <= old_sizes[uuid], (mount, device, size)
    assert any(n.startswith("smaller disk: LV vgsys/root: ") for n in notes), "\n".join(notes)
    assert any(n.startswith("smaller disk: ") for n in report_sections(verdict.job)["resize"])


def patterned_disks(directory: Path, sizes_mib: tuple[int, ...]) -> dict[Path, bytes]:
    """Sparse disks whose first and last MiB hold a pattern (not zeros, which a wipe would
    leave too): disk -> the bytes written at each end."""
    written = {}
    for index, disk in enumerate(cycle.blank_disks(directory, sizes_mib)):
        line = f"mkmedia migrate-e2e disk {index} untouched\n".encode()
        pattern = (line * (MiB // len(line) + 1))[:MiB]
        with open(disk, "r+b") as handle:
            handle.write(pattern)
            handle.seek(-MiB, 2)
            handle.write(pattern)
        written[disk] = pattern
    return written


def assert_untouched(written: dict[Path, bytes]) -> None:
    for disk, pattern in written.items():
        with open(disk, "rb") as handle:
            first = handle.read(MiB)
            handle.seek(-MiB, 2)
            last = handle.read(MiB)
        assert first == pattern, f"recover wrote into the first MiB of {disk}"
        assert last == pattern, f"recover wrote into the last MiB of {disk}"


def backup_manifest(iso: Path) -> dict[str, Any]:
    """The backup manifest inside the ISO (rescue_runtime/backup/manifest.py)."""
    text = run(["isoinfo", "-R", "-i", str(iso), "-x", "/backup/backup-manifest.json"]).stdout
    return json.loads(text)  # type: ignore[no-any-return]


# In the rescue shell after the first refusal: a copy of the backup with its volume cut to
# its first MiB, on a RAM file system, as BACKUP_URL (file://DIR holds DIR/<short hostname>),
# and the saved disk mapped onto the disk that is large enough.
TRUNCATED_BACKUP = """(set -e
mkdir -p /run/cd /etc/mkmedia/mappings
mount -t iso9660 -o ro /dev/sr0 /run/cd
dir=/run/truncated/$(cut -d. -f1 /proc/sys/kernel/hostname)
mkdir -p "$dir"
cp /run/cd/backup/backup-manifest.json "$dir/"
head -c 1048576 "/run/cd/backup/{volume}" > "$dir/{volume}"
umount /run/cd
sed -i 's|"backup_url": "iso:///backup"|"backup_url": "file:///run/truncated"|' \\
    /etc/mkmedia/rescue.json
grep -q '"backup_url": "file:///run/truncated"' /etc/mkmedia/rescue.json
echo '/dev/vda /dev/vdb' > /etc/mkmedia/mappings/disks
)"""
SECOND_RECOVER = "mkmedia recover --unattended > /tmp/truncated.log 2>&1; rc=$?; " \
    "cat /tmp/truncated.log; (exit $rc)"  # fmt: skip


@by_source("bios-lvm")
def test_bios_lvm_refusals_leave_the_disks_untouched(tmp_path: Path, backups: Backups) -> None:
    """Two refusals in one rescue boot, each before any write: the `unattended` entry on a
    disk smaller than the data stops in verify with the numbers (issue 12); then, in the
    shell, recover from a copy of the backup whose volume is truncated, with the saved disk
    mapped onto a second disk large enough, stops in verify too (issue 11). Both disks keep
    the pattern written at both ends beforehand."""
    machine, backup = backups("bios-lvm")
    manifest = backup_manifest(backup.iso)
    (volume,) = manifest["volumes"]
    data = int(manifest["bytes"])
    (old_mib,) = machine.spec.disks_mib
    small_mib = data // MiB // 4  # the files' bytes: a quarter is surely too little
    written = patterned_disks(tmp_path / "target", (small_mib, old_mib))
    rescue = cycle.rescue_machine(machine, backup.iso, list(written), vars_file=None)
    deadline = BOOT_TIMEOUT + 2 * cycle.RECOVER_DEADLINE
    log = tmp_path / "rescue.log"
    with Guest(rescue, deadline=deadline, console_log=log, name="rescue") as guest:
        outcome = guest.expect(cycle.RECOVER_OUTCOME, BOOT_TIMEOUT + cycle.RECOVER_DEADLINE)
        assert (outcome.group(1) or "").startswith("FAILED"), guest.tail(60)
        guest.expect(PROMPT, 300)
        refusal = guest.output[guest.output.find(outcome.group(0)) :]
        status, out = guest.shell(TRUNCATED_BACKUP.format(volume=volume["name"]))
        assert status == 0, out
        status, truncated = guest.shell(SECOND_RECOVER, cycle.RECOVER_DEADLINE)
    assert "nothing was touched" in refusal.replace("\n", " ").lower(), refusal
    numbers = re.search(
        r"/dev/vda offers (\d+) MiB for partitions, the data needs (\d+) MiB", refusal
    )
    assert numbers, refusal
    offered, needed = (int(n) for n in numbers.groups())
    used = sum(int(fs["used_bytes"]) for fs in manifest["filesystems"]) // MiB
    assert offered <= small_mib < used <= needed, refusal
    assert status != 0, truncated
    assert "is truncated or was changed" in truncated, truncated
    assert f"/{volume['name']} has {MiB} bytes" in truncated, truncated
    assert_untouched(written)


@by_source("uefi-raid-luks")
def test_uefi_raid_luks_onto_two_larger_disks_of_different_sizes(
    tmp_path: Path, backups: Backups
) -> None:
    """The UEFI + MD RAID1 + LUKS2 + LVM machine onto two disks larger than its two, and of
    different sizes: each disk takes the place of the one with its serial, the mirrors hold
    the smaller member's size, the recovered machine boots, unlocks itself with the key file
    crypttab names and passes the compare."""
    machine, backup = backups("uefi-raid-luks")
    first, second = machine.spec.disks_mib
    rescue_log, verdict = cycle.recover_and_verify(
        machine,
        backup,
        tmp_path,
        (first * 5 // 4, second * 3 // 2),
        extra=cycle.LUKS_CHECK + REPORT_COPY + FILL_CHECK.format(mounts="/"),
    )
    notes = recovery_notes(rescue_log)
    assert_verified(verdict, backup.state)
    status = (verdict.job / "luks.txt").read_text()
    assert "is active" in status and "key file opens it" in status, status
    assert_filesystems_fill(verdict.job, backup.state)
    text = "\n".join(notes)
    for lv in ("vgcrypt/root", "vgcrypt/swap"):
        assert f"LV {lv}: " in text, text
    resized = report_sections(verdict.job)["resize"]
    assert any(n.startswith("LV vgcrypt/root: ") for n in resized), resized
