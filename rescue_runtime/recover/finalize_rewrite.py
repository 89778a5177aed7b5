"""Finalize, device names: the restored system's configuration follows the disk mapping and
every UUID that changed.

When the mapping put a saved disk on another one (virtio `vda` on NVMe `nvme0n1`), every
place that names a device by its path is rewritten: /etc/fstab, /etc/crypttab, mdadm.conf
(DEVICE lines, devices=), GRUB's device.map, the kernel command line in /etc/default/grub
(resume=, root=), /etc/kernel/cmdline, initramfs-tools' and dracut's configuration, systemd
.mount/.swap units, uswsusp.conf, LVM's filters in lvm.conf and LVM's devices file
(finalize_lvmdevices.py: its entries name disks by serial). Partitions follow their
disk (vda2 → nvme0n1p2). A /dev/disk/by-id or by-path name embeds the old disk's identity
(its serial, its controller): it becomes the new disk's name of the same kind when there is
exactly one, else UUID= of what the partition holds where UUID= is understood, else the new
kernel name. A disk under its old name whose by-id name udev no longer knows (another disk,
another serial) is treated the same. grub.cfg is never edited: a stale name there is a
reason to regenerate it.

A UUID that is not the saved one any more (measured with blkid after recreate, whatever the
cause) is replaced in the same files in the spelling it had (mdadm's colon form too).

Each changed line goes into the recovery report (section `rewrite`): file, before, after;
each changed UUID under `uuid`.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from rescue_runtime.atomic import write_text
from rescue_runtime.layout.model import Disk, Layout
from rescue_runtime.recover import report
from rescue_runtime.recover.finalize_lvmdevices import DEVICES_FILE, rewrite_devices_file
from rescue_runtime.recover.mapping import partition_path
from rescue_runtime.run import run

DEV_DISK = Path("/dev/disk")
# A device path as configuration files write it (globs and list separators end it).
DEVICE_TOKEN = re.compile(r"(?<![\w/.-])/dev/[\w./:+@-]*[\w+@-]")
# A UUID in blkid's (8-4-4-4-12) or mdadm's (8:8:8:8) spelling, or a FAT volume id (4-4).
UUID_TOKEN = re.compile(
    r"(?<![0-9A-Fa-f])(?:[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-"
    r"[0-9A-Fa-f]{12}|[0-9A-Fa-f]{8}(?::[0-9A-Fa-f]{8}){3}|[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4})"
    r"(?![0-9A-Fa-f])"
)
# Kernel parameters and config keys whose value may be UUID=...
UUID_KEYS = re.compile(r"(?:\b(?:root|resume)=|\bRESUME=)$")
PART_SUFFIX = re.compile(r"^(?P<base>.+?)-part(?P<number>\d+)$")
GRUB_CFGS = ("boot/grub/grub.cfg", "boot/grub2/grub.cfg")
# Files initramfs-tools and dracut copy into the initramfs: a rewrite there needs a new one.
IN_INITRAMFS = {
    "etc/crypttab",
    "etc/mdadm/mdadm.conf",
    "etc/mdadm.conf",
    "etc/initramfs-tools/conf.d/resume",
    "etc/lvm/lvm.conf",
}


@dataclass
class Rewrites:
    notes: list[str] = field(default_factory=list)
    grub_reasons: list[str] = field(default_factory=list)  # grub.cfg must be regenerated
    initramfs_reasons: list[str] = field(default_factory=list)  # the initramfs too


# -- which lines of which files ---------------------------------------------------------------
def _first_field(line: str, start: int) -> bool:
    return not line[:start].strip()


def _second_field(line: str, start: int) -> bool:
    before = line[:start]
    return len(before.split()) == 1 and before[-1:].isspace()


def _after_key(line: str, start: int) -> bool:
    return bool(UUID_KEYS.search(line[:start]))


def _cmdline_line(line: str) -> bool:
    return line.lstrip().startswith("GRUB_CMDLINE_LINUX")


def _any_line(line: str) -> bool:
    return not line.lstrip().startswith("#")


def _never(_line: str, _start: int) -> bool:
    return False


@dataclass(frozen=True)
class ConfigFile:
    name: str  # relative to the target
    uuid_ok: Callable[[str, int], bool]  # may a device at this place become UUID=...?
    lines: Callable[[str], bool] = _any_line  # which lines name devices at all


CONFIG_FILES = (
    ConfigFile("etc/fstab", _first_field),
    ConfigFile("etc/crypttab", _second_field),
    ConfigFile("etc/mdadm/mdadm.conf", _never),
    ConfigFile("etc/mdadm.conf", _never),
    ConfigFile("boot/grub/device.map", _never),
    ConfigFile("boot/grub2/device.map", _never),
    ConfigFile("etc/default/grub", _after_key, _cmdline_line),
    ConfigFile("etc/initramfs-tools/conf.d/resume", _after_key),
    ConfigFile("etc/kernel/cmdline", _after_key),  # systemd-boot, kernel-install, dracut
    ConfigFile("etc/lvm/lvm.conf", _never),  # filter = [ "a|/dev/vda2|" ]
    ConfigFile("etc/uswsusp.conf", _never),  # resume device = /dev/vda2
)


# Directories of drop-in files: (glob, UUID= allowed where, which lines).
CONFIG_GLOBS = (
    ("etc/default/grub.d/*.cfg", _after_key, _cmdline_line),
    ("etc/dracut.conf.d/*.conf", _after_key, _any_line),  # kernel_cmdline=, add_device+=
    ("etc/systemd/system/*.mount", _never, _any_line),  # What=/dev/...
    ("etc/systemd/system/*.swap", _never, _any_line),
)


def config_files(target: Path) -> list[ConfigFile]:
    found = list(CONFIG_FILES)
    for pattern, uuid_ok, lines in CONFIG_GLOBS:
        for path in sorted(target.glob(pattern)):
            found.append(ConfigFile(str(path.relative_to(target)), uuid_ok, lines))
    return found


# -- the new name of an old one ---------------------------------------------------------------
def live_links(dev_disk: Path = DEV_DISK) -> dict[str, str]:
    """udev's /dev/disk/by-id and by-path links of the rescue system -> the device they name
    (/dev/NAME: udev's links are relative, ../../NAME)."""
    links = {}
    for kind in ("by-id", "by-path"):
        directory = dev_disk / kind
        for entry in sorted(directory.iterdir()) if directory.is_dir() else []:
            if entry.is_symlink():
                links[f"/dev/disk/{kind}/{entry.name}"] = "/dev/" + os.path.basename(
                    os.readlink(entry)
                )
    return links


def _scheme(link: str) -> tuple[str, str]:
    """by-id or by-path, and the link's scheme: ata, nvme, nvme-eui, virtio, wwn, pci, ..."""
    kind, name = link.split("/")[3], os.path.basename(link)
    head = name.split("-", 1)[0]
    if head == "nvme" and name.startswith(("nvme-eui.", "nvme-uuid.", "nvme-nvme.")):
        head = name.split(".", 1)[0]
    return kind, head


class DeviceNames:
    """Old device names -> new ones, for one mapped layout and the disks present now."""

    def __init__(self, layout: Layout, table: Mapping[str, str], links: Mapping[str, str]) -> None:
        self.layout, self.table, self.links = layout, dict(table), dict(links)
        # mapped disks: old path -> the layout's (mapped) disk, which keeps the old links
        self.disks: dict[str, Disk] = {}
        for old, new in table.items():
            disk = layout.disk(new)
            if disk is not None:
                self.disks[old] = disk
        self.by_link = {
            link: disk for disk in layout.disks for link in [*disk.by_id, *disk.by_path]
        }

    def content_uuid(self, device: str) -> str | None:
        """UUID=... of what sits on the device (file system, swap, LUKS), when there is one."""
        fs = self.layout.filesystem(device)
        if fs is not None and fs.uuid:
            return f"UUID={fs.uuid}"
        luks = next((v for v in self.layout.luks if v.device == device and v.uuid), None)
        return f"UUID={luks.uuid}" if luks else None

    def _partition(self, old: str) -> str | None:
        """An old partition path not in the table (a partition the layout left out)."""
        for old_disk, disk in self.disks.items():
            rule = "p" if old_disk[-1].isdigit() else ""
            found = re.fullmatch(re.escape(old_disk) + rule + r"(\d+)", old)
            if found:
                return partition_path(disk.path, int(found[1]))
        return None

    def _link(self, old: str, uuid_ok: bool) -> tuple[str, str] | None:
        """A by-id/by-path name of a mapped disk (or its partition): the new name, and how."""
        found = PART_SUFFIX.match(old)
        base, number = (found["base"], int(found["number"])) if found else (old, 0)
        disk = self.by_link.get(base)
        if disk is None:
            return None
        device = partition_path(disk.path, number) if number else disk.path
        if self.links.get(old) == device:
            return None  # the same disk, found by the same name: nothing to change
        renamed = disk.path in self.table.values()
        if not renamed and disk.path not in self.links.values():
            return None  # a disk under its old name that udev names nothing: cannot tell
        kind, scheme = _scheme(base)
        same = sorted(
            link
            for link, dev in self.links.items()
            if dev == disk.path and _scheme(link) == (kind, scheme)
        )
        if len(same) == 1:
            return (f"{same[0]}-part{number}" if number else same[0]), f"the new disk's {kind}"
        uuid = self.content_uuid(device) if uuid_ok else None
        if uuid:
            return uuid, f"no {scheme} {kind} name on the new disk; by UUID"
        return device, f"no {scheme} {kind} name on the new disk; its kernel name"

    def new_name(self, old: str, uuid_ok: bool) -> tuple[str, str] | None:
        if old in self.table:
            return self.table[old], "disk mapping"
        if old.startswith(("/dev/disk/by-id/", "/dev/disk/by-path/")):
            return self._link(old, uuid_ok)
        new = self._partition(old)
        return (new, "disk mapping") if new else None


def rewrite_line(
    line: str,
    names: DeviceNames | None,
    uuids: Mapping[str, str],
    uuid_ok: Callable[[str, int], bool],
) -> str:
    """The line with every old device name and every changed UUID replaced."""
    out = line
    if names is not None:
        parts, last = [], 0
        for match in DEVICE_TOKEN.finditer(line):
            if line[match.end() : match.end() + 1] in ("*", "?", "["):
                continue  # a glob (mdadm's DEVICE /dev/sd*): the operator's to adapt
            found = names.new_name(match.group(), uuid_ok(line, match.start()))
            if found is None:
                continue
            parts += [line[last : match.start()], found[0]]
            last = match.end()
        out = "".join(parts) + line[last:]
    if uuids:
        out = UUID_TOKEN.sub(lambda m: respell(m.group(), uuids), out)
    return out


def _hex(uuid: str) -> str:
    return re.sub(r"[^0-9a-f]", "", uuid.lower())


def dashed(digits: str) -> str:
    """Hex digits as blkid spells them: 8-4-4-4-12, or 4-4 for a FAT volume id."""
    if len(digits) == 8:
        return f"{digits[:4]}-{digits[4:]}"
    return "-".join(digits[a:b] for a, b in ((0, 8), (8, 12), (12, 16), (16, 20), (20, 32)))


def respell(token: str, uuids: Mapping[str, str]) -> str:
    """The new UUID for an old one, in the old one's spelling (dashes or colons, case)."""
    new = uuids.get(_hex(token))
    if new is None:
        return token
    digits = _hex(new)
    if ":" in token:
        text = ":".join(digits[i : i + 8] for i in range(0, len(digits), 8))
    else:
        text = dashed(digits)
    return text.upper() if token.isupper() else text


# -- UUIDs that changed -----------------------------------------------------------------------
Probe = Callable[[str], str | None]


def blkid_uuid(device: str) -> str | None:
    """The UUID blkid reads on the device now (the array's UUID on an MD member)."""
    result = run(
        ["blkid", "-c", "/dev/null", "-p", "-s", "UUID", "-o", "value", device], check=False
    )
    return result.stdout.strip() or None if result.ok else None


def uuid_changes(layout: Layout, probe: Probe = blkid_uuid) -> dict[str, str]:
    """Saved UUID (hex) -> the one on the recreated device, for every one that differs."""
    wanted: list[tuple[str, str | None]] = [(fs.device, fs.uuid) for fs in layout.filesystems]
    wanted += [(v.device, v.uuid) for v in layout.luks]
    wanted += [(md.members[0], md.uuid) for md in layout.mds if md.members]
    changes = {}
    for device, saved in wanted:
        if not saved:
            continue
        now = probe(device)
        if now and _hex(now) != _hex(saved):
            changes[_hex(saved)] = now
    return changes


# -- the files --------------------------------------------------------------------------------
def rewrite_file(
    target: Path, config: ConfigFile, names: DeviceNames | None, uuids: Mapping[str, str]
) -> list[tuple[str, str]]:
    """Rewrite one file in place (atomically, same mode); the (before, after) of each line."""
    path = target / config.name
    if not path.is_file() or path.is_symlink():
        return []
    text = path.read_text(errors="surrogateescape")
    changed: list[tuple[str, str]] = []
    lines = text.splitlines(keepends=True)
    for i, line in enumerate(lines):
        if not config.lines(line):
            continue
        new = rewrite_line(line, names, uuids, config.uuid_ok)
        if new != line:
            changed.append((line.rstrip("\n"), new.rstrip("\n")))
            lines[i] = new
    if changed:
        mode = path.stat().st_mode & 0o7777
        write_text(path, "".join(lines), mode=mode)
    return changed


def grub_cfg_reasons(
    target: Path, names: DeviceNames | None, uuids: Mapping[str, str]
) -> list[str]:
    """What a restored grub.cfg names that is gone (it is regenerated, never edited)."""
    reasons = []
    for name in GRUB_CFGS:
        path = target / name
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        stale = sorted(
            {
                m.group()
                for m in DEVICE_TOKEN.finditer(text)
                if names and names.new_name(m.group(), False)
            }
            | {m.group() for m in UUID_TOKEN.finditer(text) if _hex(m.group()) in uuids}
        )
        if stale:
            reasons.append(f"/{name} names {', '.join(stale)}, which changed")
    return reasons


def glob_warnings(target: Path, table: Mapping[str, str]) -> list[str]:
    """mdadm.conf DEVICE globs that matched the old disks and match none of the new ones (a
    glob is not rewritten: the operator knows what it was meant to cover)."""
    warnings = []
    for name in ("etc/mdadm/mdadm.conf", "etc/mdadm.conf"):
        path = target / name
        lines = path.read_text(errors="replace").splitlines() if path.is_file() else []
        for line in lines:
            words = line.split()
            if not words or words[0] != "DEVICE":
                continue
            for pattern in (w for w in words[1:] if any(c in w for c in "*?[")):
                old = any(fnmatch.fnmatchcase(p, pattern) for p in table)
                new = any(fnmatch.fnmatchcase(p, pattern) for p in table.values())
                if old and not new:
                    warnings.append(
                        f"WARNING: /{name} looks for MD members in {pattern}, which matched "
                        "the old disks and matches none of the new ones; change the DEVICE "
                        "line (or write DEVICE partitions) and rebuild the initramfs"
                    )
    return warnings


def rewrite_references(
    layout: Layout,
    target: Path,
    table: Mapping[str, str],
    uuids: Mapping[str, str],
    links: Mapping[str, str] | None = None,
) -> Rewrites:
    """Rewrite the restored system's device names (`table`: old path -> new, the disk
    mapping's) and changed UUIDs (`uuids`: old hex -> new); `layout` is the mapped one."""
    result = Rewrites()
    # a disk under its old name may still be another disk: its by-id names are checked too
    names = DeviceNames(layout, table, live_links() if links is None else links)
    for config in config_files(target):
        for before, after in rewrite_file(target, config, names, uuids):
            line = f"/{config.name}: {before.strip()!r} -> {after.strip()!r}"
            report.note("rewrite", line)
            result.notes.append(f"rewritten {line}")
            if config.name in IN_INITRAMFS or config.name.startswith("etc/dracut.conf.d/"):
                reason = f"/{config.name} rewritten"
                if reason not in result.initramfs_reasons:
                    result.initramfs_reasons.append(reason)
            if config.name.startswith("etc/default/grub"):
                reason = f"/{config.name} (kernel command line) rewritten"
                if reason not in result.grub_reasons:
                    result.grub_reasons.append(reason)
    for before, after in rewrite_devices_file(layout, target):
        line = f"/{DEVICES_FILE}: {before.strip()!r} -> {after.strip()!r}"
        report.note("rewrite", line)
        result.notes.append(f"rewritten {line}")
        reason = f"/{DEVICES_FILE} rewritten"
        if reason not in result.initramfs_reasons:
            result.initramfs_reasons.append(reason)
    for old, new in uuids.items():
        reason = f"UUID {dashed(old)} is now {new}"
        result.grub_reasons.append(reason)
        result.initramfs_reasons.append(reason)
        report.note("uuid", f"the recreated device's UUID {dashed(old)} is now {new}")
    for warning in glob_warnings(target, table):
        report.note("rewrite", warning)
        result.notes.append(warning)
    for reason in grub_cfg_reasons(target, names, uuids):
        report.note("rewrite", f"{reason}: grub.cfg is regenerated, not edited")
        result.grub_reasons.append(reason)
    if not result.notes:
        result.notes.append(
            "device names: no restored configuration file names a changed device or UUID"
        )
    return result
