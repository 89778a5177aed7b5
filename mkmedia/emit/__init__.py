"""Emitters: one module per OUTPUT kind, registered here under its OUTPUT name.

The registry decides what a configuration may name: validation accepts an OUTPUT only when an
emitter is registered for it, and `mkmedia settings` lists the registered kinds. A kind's module
is imported only when it is used (mkosi's pattern) and hands back its class as `EMITTER`.
Emitters take plain values (`MediaSpec`, paths); the output step translates the settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from mkmedia.session.artifacts import Artifact
from rescue_runtime.registry import LazyRegistry

__all__ = [
    "MEDIA_ARGUMENTS",
    "Artifact",
    "Emitter",
    "MediaSpec",
    "emitter_class",
    "output_names",
]

# OUTPUT name -> module that defines `EMITTER`, an Emitter subclass. A new kind only needs
# its module and a line here.
_EMITTERS: dict[str, str] = {
    "ISO": "mkmedia.emit.iso",
    "CDROM": "mkmedia.emit.cdrom",
    "RAMDISK": "mkmedia.emit.ramdisk",
    "USB": "mkmedia.emit.usb",
    "PXE": "mkmedia.emit.pxe",
    "RAWDISK": "mkmedia.emit.rawdisk",
    "OBDR": "mkmedia.emit.obdr",
}


@dataclass(frozen=True)
class MediaSpec:
    """What every emitter is told, as plain values."""

    directory: Path  # where the media go (OUTPUT_URL/OUTPUT_PREFIX)
    prefix: str  # file-name prefix of the media
    host: str
    kernel_cmdline: str
    consoles: tuple[str, ...]
    boot_default: str
    boot_timeout: int
    volume_label: str | None = None  # None: derived from the host name
    secure_boot: bool = False
    device: str = ""  # the device written to (CDROM: the drive); empty: the emitter finds one
    source_date_epoch: int | None = None
    # Directories the media carry beside the rescue system (name -> local directory), such
    # as a backup with BACKUP_URL=iso://; a kind that cannot carry them refuses.
    payload_dirs: dict[str, Path] = field(default_factory=dict)
    # PXE: the TFTP root (PXE_TFTP_URL; None: the output directory) and the MAC/IPv4
    # addresses the host's own configuration files are named for.
    tftp_dir: Path | None = None
    pxe_clients: tuple[str, ...] = ()
    # RAWDISK: the image formats written (raw, qcow2).
    disk_formats: tuple[str, ...] = ("raw",)
    # The marker id the rescue system was built to look for (rescue.json); empty: the
    # emitter derives one.
    medium_id: str = ""
    usb_retain: int = 2  # OUTPUT=USB: rescue images kept per host on the stick (0: all)
    # OUTPUT=OBDR (`device` is TAPE_DEVICE): the backup stream's record size, whether a tape
    # holding another program's data is written over, the backup staged for the tape.
    tape_block_size: int = 65536
    tape_overwrite: bool = False
    tape_backup: Path | None = None

    def arguments(self, names: tuple[str, ...]) -> dict[str, Any]:
        """The fields `names` as keyword arguments for a write_<kind>() of the same names."""
        return {name: getattr(self, name) for name in names}


# The MediaSpec fields that write_iso(), write_pxe() and write_rawdisk() all take, under the
# same names.
MEDIA_ARGUMENTS = (
    "host",
    "kernel_cmdline",
    "boot_default",
    "boot_timeout",
    "consoles",
    "secure_boot",
    "payload_dirs",
    "source_date_epoch",
)


class Emitter:
    """One OUTPUT kind. `check()` runs in the prep stage, before anything is built; `write()`
    writes the media and returns every file it wrote."""

    name: ClassVar[str] = ""

    def __init__(self, spec: MediaSpec) -> None:
        self.spec = spec

    def check(self) -> None:
        """Raise an MkmediaError when this machine cannot take the media (nothing built yet)."""

    def write(self, *, kernel: Path, initrd: Path, work_dir: Path) -> list[Artifact]:
        raise NotImplementedError

    def write_arguments(
        self, kernel: Path, initrd: Path, work_dir: Path, **own: Any
    ) -> dict[str, Any]:
        """The keyword arguments of this kind's write_<kind>(): the rescue system's files, the
        work directory, the spec's MEDIA_ARGUMENTS and the kind's `own` ones."""
        media = self.spec.arguments(MEDIA_ARGUMENTS)
        return {"kernel": kernel, "initrd": initrd, "work_dir": work_dir, **media, **own}


_REGISTRY: LazyRegistry[Emitter] = LazyRegistry(
    _EMITTERS,
    "EMITTER",
    lambda name: (
        f"OUTPUT={name} has no emitter in this version of mkmedia, so no media would be written."
    ),
)


def output_names() -> tuple[str, ...]:
    """The OUTPUT kinds this version writes, in the order `mkmedia settings` shows them."""
    return _REGISTRY.names()


def emitter_class(name: str) -> type[Emitter]:
    """The class writing OUTPUT=name; ConfigError names the kinds that exist."""
    return _REGISTRY.get(name)
