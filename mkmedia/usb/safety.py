"""Before a stick is formatted: what it is, and every reason not to write to it.

ReaR issue 1271: a backup disk was wiped because it had the same size as sda. We never pick a
disk by size: the device is named, looked at (model, size, serial, partitions) and refused when
it is mounted, holds the running root, belongs to the saved layout or is not removable.
Mounted and running-root refusals hold even with --force: writing under a mounted file system
destroys it, whatever the user meant; the other two are a judgement --force may overrule.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rescue_runtime.errors import MissingError, UsageError
from rescue_runtime.layout.model import Layout
from rescue_runtime.run import require, run

LSBLK_COLUMNS = "PATH,TYPE,SIZE,MODEL,SERIAL,WWN,RM,HOTPLUG,TRAN,FSTYPE,LABEL,MOUNTPOINT"


@dataclass
class Target:
    """The device or image file `mkmedia format` (or OUTPUT=USB) is about to write."""

    path: Path  # as named, resolved
    block: bool  # a block device (else a plain image file)
    size: int
    model: str = ""
    serial: str = ""
    wwn: str = ""
    transport: str = ""
    removable: bool = False
    mounts: list[str] = field(default_factory=list)  # "DEVICE on MOUNTPOINT"
    partitions: list[str] = field(default_factory=list)  # readable lines
    loops: list[str] = field(default_factory=list)  # loop devices backed by the image file
    identities: set[str] = field(default_factory=set)  # paths naming this disk


@dataclass(frozen=True)
class Refusal:
    reason: str
    forcible: bool  # --force overrules it


def _lsblk(device: str) -> dict[str, object]:
    lsblk = require("lsblk", package="util-linux")
    result = run([lsblk, "-J", "-b", "-o", LSBLK_COLUMNS, device], what=f"looking at {device}")
    nodes = json.loads(result.stdout).get("blockdevices") or []
    if not nodes:
        raise MissingError(f"lsblk knows no device {device}.", hint="Check the device name.")
    node: dict[str, object] = nodes[0]
    return node


def _walk(node: dict[str, object]) -> list[dict[str, object]]:
    children = node.get("children") or []
    assert isinstance(children, list)
    return [node, *(n for child in children for n in _walk(child))]


def _text(node: dict[str, object], key: str) -> str:
    value = node.get(key)
    return "" if value is None else str(value).strip()


def _flag(node: dict[str, object], key: str) -> bool:
    return node.get(key) in (True, 1, "1")


def _block_target(path: Path) -> Target:
    node = _lsblk(str(path))
    if _text(node, "type") == "part":
        raise UsageError(
            f"{path} is a partition; mkmedia format writes a whole disk.",
            hint="Name the disk the partition is on (lsblk shows it).",
        )
    target = Target(
        path=path,
        block=True,
        size=int(_text(node, "size") or 0),
        model=_text(node, "model"),
        serial=_text(node, "serial"),
        wwn=_text(node, "wwn"),
        transport=_text(node, "tran"),
        removable=_flag(node, "rm") or _flag(node, "hotplug") or _text(node, "tran") == "usb",
        identities={str(path), os.path.realpath(path)},
    )
    for child in _walk(node):
        mountpoint = _text(child, "mountpoint")
        if mountpoint:
            target.mounts.append(f"{_text(child, 'path')} on {mountpoint}")
        if child is not node:
            target.partitions.append(
                f"{_text(child, 'path')}  {int(_text(child, 'size') or 0) // 2**20} MiB  "
                f"{_text(child, 'fstype') or '-'}  {_text(child, 'label')}".rstrip()
            )
    return target


def _loops_of(image: Path) -> list[str]:
    losetup = require("losetup", package="mount")
    result = run([losetup, "-n", "-O", "NAME", "-j", str(image)], what=f"looking at {image}")
    return [line.strip() for line in result.stdout.splitlines() if line.strip()]


def inspect(path: Path) -> Target:
    """Look at `path` (a block device or an image file) without changing it."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise MissingError(
            f"{path} does not exist.",
            hint="Name a USB stick (/dev/sdX) or an image file; `mkmedia format --size 1G "
            "FILE` creates an image.",
        ) from None
    if stat.S_ISBLK(mode):
        return _block_target(path.resolve())
    if not stat.S_ISREG(mode):
        raise UsageError(
            f"{path} is neither a block device nor a regular file.",
            hint="Name a USB stick (/dev/sdX) or an image file.",
        )
    target = Target(path=path.resolve(), block=False, size=path.stat().st_size, removable=True)
    target.identities = {str(path), str(path.resolve())}
    for loop in _loops_of(path):
        target.loops.append(loop)
        target.identities.add(loop)
        target.mounts += _block_target(Path(loop)).mounts
    return target


def root_disks() -> set[str]:
    """The disks (and loop devices) under the running root file system."""
    findmnt = require("findmnt", package="util-linux")
    lsblk = require("lsblk", package="util-linux")
    source = run([findmnt, "-n", "-o", "SOURCE", "/"], what="finding the root device")
    device = source.stdout.strip().split("[")[0]
    if not device.startswith("/dev/"):
        return set()  # overlay, tmpfs, a container's root: no disk of ours
    ancestors = run(
        [lsblk, "-n", "-s", "-o", "PATH", device], check=False, what="finding the root disk"
    )
    return {line.strip() for line in ancestors.stdout.splitlines() if line.strip()}


def layout_disks(layout: Layout | None) -> list[tuple[str, set[str]]]:
    """Each disk of the saved layout: its path and every identity that names it."""
    if layout is None:
        return []
    disks = []
    for disk in layout.disks:
        names = {disk.path, *disk.by_id, *disk.by_path}
        names |= {os.path.realpath(name) for name in list(names) if name.startswith("/dev/")}
        if disk.serial:
            names.add(f"serial:{disk.serial}")
        if disk.wwn:
            names.add(f"wwn:{disk.wwn}")
        disks.append((disk.path, names))
    return disks


def refusals(
    target: Target, saved: Sequence[tuple[str, set[str]]], root: set[str]
) -> list[Refusal]:
    """Every reason not to write to `target` (empty: go ahead, after asking)."""
    found = []
    if target.mounts:
        found.append(
            Refusal(
                f"{target.path} is in use: {'; '.join(target.mounts)}. Unmount it first.",
                forcible=False,
            )
        )
    if target.identities & root:
        found.append(Refusal(f"{target.path} holds the running root file system.", forcible=False))
    names = set(target.identities)
    if target.serial:
        names.add(f"serial:{target.serial}")
    if target.wwn:
        names.add(f"wwn:{target.wwn}")
    for disk, identities in saved:
        if names & identities:
            found.append(
                Refusal(
                    f"{target.path} is the disk {disk} of the saved layout, which recover "
                    "would recreate from it.",
                    forcible=True,
                )
            )
    if target.block and not target.removable:
        found.append(
            Refusal(
                f"{target.path} is not a removable disk (transport "
                f"{target.transport or 'unknown'}).",
                forcible=True,
            )
        )
    return found


def describe(target: Target) -> str:
    """What the user is shown before being asked."""
    lines = [f"Device:     {target.path}" + ("" if target.block else " (image file)")]
    if target.block:
        lines.append(f"Model:      {target.model or 'unknown'}")
        lines.append(f"Serial:     {target.serial or 'unknown'}")
    lines.append(f"Size:       {target.size} bytes ({target.size / 2**30:.1f} GiB)")
    lines.append("Partitions: " + ("none" if not target.partitions else target.partitions[0]))
    lines += [f"            {line}" for line in target.partitions[1:]]
    return "\n".join(lines)
