"""Finalize, the restored system itself: its initramfs (only when something it embeds
changed), SELinux relabelling, mount-point permissions, the recovery logs."""

from __future__ import annotations

import os
import re
from pathlib import Path

from rescue_runtime.atomic import copy_file, write_text
from rescue_runtime.layout.model import Layout
from rescue_runtime.layout.parse.tables import parse_crypttab, parse_mdadm_conf
from rescue_runtime.recover.finalize_boot import target_program
from rescue_runtime.run import run

LOG_DIR = "var/log/mkmedia"
MDADM_CONFS = ("etc/mdadm/mdadm.conf", "etc/mdadm.conf")


def _read(target: Path, name: str) -> str | None:
    path = target / name
    return path.read_text(errors="replace") if path.is_file() else None


def _hex(uuid: str | None) -> str:
    """A UUID in any of mdadm's and blkid's spellings, as hex digits only."""
    return re.sub(r"[^0-9a-f]", "", (uuid or "").lower())


def conf_mismatches(layout: Layout, target: Path) -> list[str]:
    """What mdadm.conf and crypttab of the restored system name by a UUID that is not the
    one of the array or volume the layout recreated under that name."""
    found = []
    for name in MDADM_CONFS:
        text = _read(target, name)
        for array in parse_mdadm_conf(text or ""):
            md = next(
                (
                    m
                    for m in layout.mds
                    if array.device == m.path or (m.name and array.values.get("name") == m.name)
                ),
                None,
            )
            wanted = array.values.get("uuid")
            if md and md.uuid and wanted and _hex(wanted) != _hex(md.uuid):
                found.append(f"/{name} names {array.device} by UUID {wanted}, not {md.uuid}")
    for entry in parse_crypttab(_read(target, "etc/crypttab") or ""):
        luks = next((v for v in layout.luks if v.name == entry.name), None)
        spec = entry.device
        by_uuid = spec.upper().startswith("UUID=")
        if luks and luks.uuid and by_uuid and _hex(spec[5:]) != _hex(luks.uuid):
            found.append(f"/etc/crypttab names {entry.name} by {spec}, not UUID={luks.uuid}")
    return found


def initramfs_reasons(layout: Layout, target: Path, changed: list[str]) -> list[str]:
    """Why the initramfs must be rebuilt; [] when what it embeds is as at backup time."""
    return list(changed) + conf_mismatches(layout, target)


def rebuild_initramfs(layout: Layout, target: Path, changed: list[str]) -> list[str]:
    reasons = initramfs_reasons(layout, target, changed)
    if not reasons:
        return [
            "initramfs not rebuilt: every UUID, mdadm.conf and crypttab are as at backup "
            "time and it holds the root disk's driver, so the restored one fits"
        ]
    why = "; ".join(reasons)
    if target_program(target, "update-initramfs"):
        argv = ["update-initramfs", "-u", "-k", "all"]
    elif target_program(target, "dracut"):
        argv = ["dracut", "--force", "--regenerate-all"]
    else:
        return [f"WARNING: the initramfs should be rebuilt ({why}), but the restored system "
                "has neither update-initramfs nor dracut"]  # fmt: skip
    run(["chroot", str(target), *argv], what="rebuilding the initramfs")
    return [f"initramfs rebuilt with {argv[0]}: {why}"]


def selinux_mode(target: Path) -> str | None:
    """SELINUX= of the restored system's /etc/selinux/config (enforcing, permissive, ...)."""
    for line in (_read(target, "etc/selinux/config") or "").splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key.strip() == "SELINUX":
            return value.strip().strip("\"'").lower()
    return None


def request_relabel(target: Path) -> list[str]:
    mode = selinux_mode(target)
    if mode not in ("enforcing", "permissive"):
        return []
    write_text(target / ".autorelabel", "")
    return [f"SELinux ({mode}): /.autorelabel written, the first boot relabels the files"]


def mount_point_permissions() -> list[str]:
    """The layout model keeps no mode or owner for mount points (model.Mount): the restore
    brought back those of the directories below the mounts, which is what the system sees."""
    return ["mount-point permissions: the layout records none; left as the restore made them"]


def copy_logs(logs: list[Path], target: Path) -> list[str]:
    dest = target / LOG_DIR
    dest.mkdir(parents=True, exist_ok=True)
    os.chmod(dest, 0o700)
    copied, missing = [], []
    for log in logs:
        if log.is_file():
            copy_file(log, dest / log.name, mode=0o600)
            copied.append(log.name)
        else:
            missing.append(str(log))
    notes = [f"recovery logs copied to /{LOG_DIR}: {', '.join(copied) or 'none'}"]
    if missing:
        notes.append(f"logs not found, not copied: {', '.join(missing)}")
    return notes
