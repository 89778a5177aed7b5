"""OUTPUT=CDROM: burn the ISO to an optical drive with xorriso (cdrecord emulation)."""

from __future__ import annotations

import re
from pathlib import Path

from mkmedia.emit import Artifact
from mkmedia.emit.iso import IsoEmitter
from rescue_runtime.errors import MissingError
from rescue_runtime.run import require, run

_DEVICE_LINE = re.compile(r"^\d+\s+-dev\s+'([^']+)'\s+(\S+)\s*:", re.MULTILINE)
_STATUS = re.compile(r"^Media status\s*:\s*(.*)$", re.MULTILINE)
_CURRENT = re.compile(r"^Media current\s*:\s*(.*)$", re.MULTILINE)
_REWRITABLE = ("-RW", "RAM", "BD-RE", "+RW")


def optical_writers() -> list[str]:
    """The optical drives xorriso can write to (rw permissions for the burner)."""
    xorriso = require("xorriso", package="xorriso")
    result = run([xorriso, "-devices"], check=False, what="looking for optical drives")
    drives = []
    for device, perms in _DEVICE_LINE.findall(result.stdout + result.stderr):
        if perms.startswith("rw"):
            drives.append(device)
    return drives


def check_medium(device: str) -> str:
    """Raise MissingError unless `device` holds a medium that can take the ISO; return its kind."""
    xorriso = require("xorriso", package="xorriso")
    result = run([xorriso, "-outdev", device, "-toc"], check=False, what="reading the medium")
    text = result.stdout + result.stderr
    current = _CURRENT.search(text)
    status = _STATUS.search(text)
    kind = current.group(1).strip() if current else "none"
    state = status.group(1).strip() if status else "is not present"
    if result.returncode != 0 or "is not present" in state or kind.lower().startswith("none"):
        raise MissingError(
            f"The optical drive {device} holds no medium (or it cannot be read: {state}).",
            hint="Insert a blank CD/DVD (or a rewritable one) and run mkmedia again.",
        )
    writable = "is blank" in state or "appendable" in state or kind.endswith(_REWRITABLE)
    if not writable:
        raise MissingError(
            f"The medium in {device} ({kind}) is closed and not rewritable ({state}).",
            hint="Insert a blank or rewritable CD/DVD.",
        )
    return kind


def find_writer(device: str | None) -> str:
    """The drive to burn to: `device` when it exists, else the first writer xorriso lists."""
    if device:
        if not Path(device).exists():
            raise MissingError(
                f"The optical drive {device} (CDROM_DEVICE) does not exist.",
                hint="Check the device name with `xorriso -devices`.",
            )
        return device
    drives = optical_writers()
    if not drives:
        raise MissingError(
            "OUTPUT=CDROM but this machine has no writable optical drive (xorriso -devices "
            "lists none).",
            hint="Connect a CD/DVD writer, name it with CDROM_DEVICE, or use OUTPUT=ISO.",
        )
    return drives[0]


def burn_iso(iso: Path, *, device: str | None = None, speed: str | None = None) -> list[Artifact]:
    """Write the ISO to an optical medium; return the ISO artifact (the disc holds the same)."""
    if not iso.is_file():
        raise MissingError(f"The ISO {iso} to burn does not exist.")
    device = find_writer(device)
    check_medium(device)
    xorriso = require("xorriso", package="xorriso")
    argv = [xorriso, "-as", "cdrecord", "-v", f"dev={device}", "blank=as_needed", "-eject"]
    if speed:
        argv.append(f"speed={speed}")
    run([*argv, str(iso)], what=f"burning {iso} to {device}")
    return [Artifact.of(iso, "cdrom")]


class CdromEmitter(IsoEmitter):
    """The hybrid ISO, written beside the other media and then burnt to the optical drive."""

    name = "CDROM"

    def check(self) -> None:
        find_writer(self.spec.device or None)

    def write(self, *, kernel: Path, initrd: Path, work_dir: Path) -> list[Artifact]:
        written = super().write(kernel=kernel, initrd=initrd, work_dir=work_dir)
        return [*written, *burn_iso(self.iso_path(), device=self.spec.device or None)]


EMITTER = CdromEmitter
