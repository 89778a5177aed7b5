#!/usr/bin/env python3
"""The source machine's side of the recovery cycle (standard library only, runs in the guest).

`record OUT [--data-dir DIR]...`: a treemanifest (tests/e2e/treemanifest.py, beside this file
in the job share) of every local file system the backup covers: each mounted ext2/3/4, xfs,
btrfs or vfat file system, plus the data directories that sit on a btrfs subvolume of their
own that is not mounted (the walk does not cross into it). Left out (EXCLUDES, each with the
reason) is only what legitimately changes between backup time and the recovered system's boot.

`state OUT`: the identities recovery must keep (partition table and partition GUIDs, file
system, MD, LUKS and LVM UUIDs, labels, btrfs subvolumes and the default one), normalised so
that what the kernel names freely (md127 or md126) does not count.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import treemanifest  # beside this file in the job share (the script's directory is on sys.path)

LOCAL_FS = frozenset(["ext2", "ext3", "ext4", "xfs", "btrfs", "vfat"])
# What changes between the backup and the recovered boot without recovery having done wrong,
# as (glob, reason). A directory's own entry goes too: its mtime follows what is made in it.
EXCLUDES = (
    ("/var/log", "the journal and logs of every boot; recover adds /var/log/mkmedia/"),
    ("/var/lib/systemd", "systemd's random seed, timer stamps and boot records, per boot"),
    ("/tmp", "the backup leaves out /tmp/* (as ReaR does), and every boot empties it"),
    ("/var/tmp", "systemd makes the services' private tmp directories there at every boot"),
    # The recreated VG has the saved VG/LV/PV UUIDs, extents and LVs (the state check compares
    # them) but a new metadata sequence number and creation times: the first LVM command on
    # the recovered machine files its metadata into these two directories again.
    ("/etc/lvm/archive", "LVM archives the recreated VG's metadata when it first sees it"),
    ("/etc/lvm/backup", "LVM rewrites its backup of the recreated VG's metadata then"),
)

# Content, mode, owner and xattrs compared, the mtime not, as (glob, reason).
MTIME_FREE = (
    ("/boot/grub", "finalize's grub-install writes the boot loader's modules, fonts and"),
    ("/boot/grub/*", "locales again (on BIOS: the boot code must go on the new disk): same bytes"),
)


def mounts() -> list[tuple[str, str]]:
    """(mount point, fstype) of every mount, from /proc/self/mountinfo."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        fstype = fields[fields.index("-") + 1]
        found.append((fields[4].replace("\\040", " "), fstype))
    return found


def roots_and_excludes(data_dirs: list[str]) -> tuple[list[str], list[str]]:
    everything = mounts()
    roots = sorted({target for target, fstype in everything if fstype in LOCAL_FS})
    devices = {os.lstat(root).st_dev for root in roots}
    for data_dir in data_dirs:  # e.g. a nested btrfs subvolume, not mounted on its own
        if os.lstat(data_dir).st_dev not in devices:
            roots.append(data_dir)
    excludes = []
    for pattern, _reason in EXCLUDES:
        excludes += [pattern, pattern + "/*"]
    # Mount points of what is not backed up (/proc, /run, the job share, ...): lstat shows
    # the mounted file system's root there, not the directory the backup holds.
    for target, fstype in everything:
        if fstype not in LOCAL_FS and target not in roots:
            excludes.append(target)
    return roots, sorted(set(excludes))


def output(argv: list[str], *, check: bool = True) -> str:
    return subprocess.run(argv, check=check, capture_output=True, text=True).stdout


def state() -> dict[str, object]:
    columns = "NAME,TYPE,FSTYPE,UUID,PARTUUID,PTUUID,PTTYPE,LABEL,PARTLABEL,SIZE"
    devices = json.loads(output(["lsblk", "-J", "-l", "-b", "-o", columns]))["blockdevices"]
    rows = set()
    for dev in devices:
        if dev["type"] in ("rom", "loop"):
            continue
        if dev["type"].startswith("raid"):
            dev["name"] = "md"  # the kernel's md number is not the machine's
        rows.add(json.dumps(dev, sort_keys=True))
    result: dict[str, object] = {"lsblk": sorted(rows)}
    lvm = []
    for argv in (
        ["pvs", "--noheadings", "-o", "pv_uuid,vg_name,pe_start"],
        ["vgs", "--noheadings", "-o", "vg_name,vg_uuid,vg_extent_size,pv_count,lv_count"],
        ["lvs", "--noheadings", "-o", "lv_name,vg_name,lv_uuid,lv_size,segtype,stripes"],
    ):
        # a machine without LVM or MD: nothing to list (what there is, both sides must list)
        lvm += sorted(" ".join(line.split()) for line in output(argv, check=False).splitlines())
    result["lvm"] = lvm
    result["md"] = sorted(output(["mdadm", "--detail", "--scan"], check=False).splitlines())
    root_type = dict(mounts()).get("/")
    if root_type == "btrfs":
        # IDs and paths; generations change with every write
        listing = []
        for line in output(["btrfs", "subvolume", "list", "/"]).splitlines():
            words = line.split()
            listing.append(f"ID {words[1]} top level {words[6]} path {words[8]}")
        result["btrfs_subvolumes"] = sorted(listing)
        words = output(["btrfs", "subvolume", "get-default", "/"]).split()
        result["btrfs_default"] = f"ID {words[1]} path {words[-1]}"
    return result


def main() -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record")
    rec.add_argument("output")
    rec.add_argument("--data-dir", action="append", default=[])
    st = sub.add_parser("state")
    st.add_argument("output")
    args = parser.parse_args()
    if args.command == "record":
        roots, excludes = roots_and_excludes(args.data_dir)
        manifest = treemanifest.record(roots, excludes, mtime_free=[p for p, _ in MTIME_FREE])
        text = json.dumps(manifest, indent=1, sort_keys=True) + "\n"
        print(f"recorded {len(manifest['entries'])} entries below {' '.join(roots)}")
    else:
        text = json.dumps(state(), indent=1, sort_keys=True) + "\n"
    Path(args.output + ".partial").write_text(text)
    os.replace(args.output + ".partial", args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
