"""Finalize, LVM's devices file: the restored system's LVM still finds its PVs on new disks.

Since LVM 2.03.12 a system may keep /etc/lvm/devices/system.devices (RHEL 9 and its kin
by default, Debian when `use_devicesfile` is on): LVM then looks at the listed devices only,
each named by a stable id of its disk (IDTYPE=sys_wwid/sys_serial: the serial or world wide
name) and a PVID. On a replacement disk those ids are another disk's, so the PV is ignored,
the VG is not found and the machine does not boot.

An entry is rewritten when it names a PV of the layout (by its PVID) by a disk id the
device that holds the PV now does not have, or by a device name that is not its name now:
it becomes IDTYPE=devname on the PV's device now (LVM checks the PVID on it, and follows a
renamed device by that PVID itself). Entries that name the content (crypt_uuid, md_uuid,
mpath_uuid, lvmlv_uuid: recreate keeps those UUIDs) or a PV the layout does not know stay.
The file is embedded in the initramfs, so a rewrite is a reason to rebuild it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

from rescue_runtime.atomic import write_text
from rescue_runtime.layout.model import Layout

DEVICES_FILE = "etc/lvm/devices/system.devices"
SYS_BLOCK = Path("/sys/class/block")
# Ids taken from the disk itself; the others name content that recreate keeps.
DISK_IDS = {"sys_wwid", "sys_serial", "wwid_naa", "wwid_eui", "wwid_t10"}
IdReader = Callable[[str], set[str]]


def _squeeze(value: str) -> str:
    """An id as compared here: LVM replaces blanks by underscores and may prefix a type."""
    return re.sub(r"[\s_]+", "", value).lower()


def disk_ids(device: str, sys_block: Path = SYS_BLOCK) -> set[str]:
    """The serial numbers and world wide names sysfs gives `device`'s disk (squeezed)."""
    name = os.path.basename(os.path.realpath(device))
    entry = sys_block / name
    if (entry / "partition").exists():
        entry = entry.resolve().parent
    found = set()
    for relative in ("wwid", "device/wwid", "serial", "device/serial", "device/vpd_pg80"):
        try:
            value = (entry / relative).read_bytes().decode(errors="replace").strip("\0 \n")
        except OSError:
            continue
        if value:
            found.add(_squeeze(value))
    return found


def _fields(line: str) -> dict[str, str]:
    return dict(word.split("=", 1) for word in line.split() if "=" in word)


def _matches(ids: set[str], idname: str) -> bool:
    """Does a disk id of the file name one of `ids`? (LVM may add a type prefix: naa., t10.)"""
    wanted = _squeeze(idname)
    return any(wanted == i or wanted.endswith(i) or i.endswith(wanted) for i in ids if i)


def stale(fields: dict[str, str], device: str, read_ids: IdReader) -> bool:
    idtype, idname = fields.get("IDTYPE", ""), fields.get("IDNAME", "")
    if idtype == "devname":
        return idname != device
    if idtype in DISK_IDS:
        return not _matches(read_ids(device), idname)
    return False


def rewrite_devices_file(
    layout: Layout, target: Path, read_ids: IdReader = disk_ids
) -> list[tuple[str, str]]:
    """Rewrite the restored system's devices file for the PVs' devices now (`layout` is the
    mapped one); the (before, after) of each changed line."""
    path = target / DEVICES_FILE
    if not path.is_file() or path.is_symlink():
        return []
    by_pvid = {pv.uuid.replace("-", ""): pv.device for pv in layout.pvs}
    lines = path.read_text(errors="surrogateescape").splitlines(keepends=True)
    changed = []
    for i, line in enumerate(lines):
        if line.lstrip().startswith("#"):
            continue
        fields = _fields(line)
        device = by_pvid.get(fields.get("PVID", ""))
        if device is None or not stale(fields, device, read_ids):
            continue
        new = f"IDTYPE=devname IDNAME={device} DEVNAME={device} PVID={fields['PVID']}\n"
        changed.append((line.rstrip("\n"), new.rstrip("\n")))
        lines[i] = new
    if changed:
        write_text(path, "".join(lines), mode=path.stat().st_mode & 0o7777)
    return changed
