"""Emitters: one module per OUTPUT kind, registered here under its OUTPUT name.

The registry decides what a configuration may name: validation accepts an OUTPUT only when an
emitter is registered for it, and `mkmedia settings` lists the registered kinds. A kind's module
is imported only when it is used (mkosi's pattern) and hands back its class as `EMITTER`.
Emitters take plain values (`MediaSpec`, paths); the output step translates the settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from mkmedia.session.artifacts import Artifact
from rescue_runtime.registry import LazyRegistry

__all__ = ["Artifact", "Emitter", "MediaSpec", "emitter_class", "output_names"]

# OUTPUT name -> module that defines `EMITTER`, an Emitter subclass. A new kind only needs
# its module and a line here.
_EMITTERS: dict[str, str] = {
    "ISO": "mkmedia.emit.iso",
    "CDROM": "mkmedia.emit.cdrom",
    "RAMDISK": "mkmedia.emit.ramdisk",
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
    # The marker id the rescue system was built to look for (rescue.json); empty: the
    # emitter derives one.
    medium_id: str = ""


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
