"""The further media of a spanned iso:// backup, in the rescue system: found by their marker
(medium.scan_media), mounted read-only while their volumes are read, asked for in turn.

Interactive, a medium not in any drive is asked for ("insert medium 2 of 3 and press Enter");
the first medium is unmounted first, so a machine with one drive can take the next disc.
Unattended, every present medium is searched, and a missing one stops recover in verify
(`missing_media`), before any disk is written.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rescue_runtime.backup import spanning
from rescue_runtime.backup.medium import (
    Iso9660Mounter,
    Mounter,
    SysBlock,
    marker_path,
    medium_devices,
    scan_media,
)
from rescue_runtime.errors import MissingError, MkmediaError


def _what(medium: spanning.Medium, total: int) -> str:
    return (
        f"backup medium {medium.number} of {total} (marker /{marker_path(medium.marker_id)}, "
        f"volumes {', '.join(medium.volumes)})"
    )


@dataclass
class IsoMediumFinder:
    """spanning.MediumFinder for ISO 9660 media in the machine's drives."""

    backup_name: str  # the backup's directory on every medium (iso:///NAME)
    work_dir: Path
    ask: Callable[[str, str], str] | None  # None: unattended, nobody to insert a medium
    release: Callable[[], None] = lambda: None  # unmount the first medium (one drive)
    blocks: SysBlock = field(default_factory=SysBlock)
    mounter: Mounter = field(default_factory=Iso9660Mounter)
    devices: set[str] = field(default_factory=set)  # every further medium's disks seen

    @contextlib.contextmanager
    def medium(self, medium: spanning.Medium, total: int) -> Iterator[Path]:
        while True:
            scan = scan_media(
                medium.marker_id, self.work_dir, blocks=self.blocks, mounter=self.mounter, keep=True
            )
            self.devices |= medium_devices(scan, self.blocks)
            if scan.mounted is not None:
                break
            if self.ask is None:
                raise scan.not_found(f"{_what(medium, total)}")
            self.release()
            answer = self.ask(
                f"Insert {_what(medium, total)} and press Enter (or type 'abort').", ""
            )
            if answer.strip().lower() in ("a", "abort"):
                raise MkmediaError(
                    f"Restore aborted by the operator while waiting for {_what(medium, total)}; "
                    "the restore is incomplete.",
                    hint="Run `mkmedia recover` again with the media at hand.",
                )
        _, mountpoint = scan.mounted
        try:
            yield mountpoint / self.backup_name
        finally:
            self.mounter.umount(mountpoint)
            with contextlib.suppress(OSError):
                mountpoint.rmdir()


def missing_media(
    media: Sequence[spanning.Medium],
    work_dir: Path,
    *,
    blocks: SysBlock | None = None,
    mounter: Mounter | None = None,
) -> tuple[list[spanning.Medium], set[str]]:
    """The further media that no present drive holds, and the disks of those present."""
    blocks = blocks or SysBlock()
    mounter = mounter or Iso9660Mounter()
    missing: list[spanning.Medium] = []
    devices: set[str] = set()
    for medium in media:
        scan = scan_media(medium.marker_id, work_dir, blocks=blocks, mounter=mounter, keep=False)
        devices |= medium_devices(scan, blocks)
        if not scan.carriers:
            missing.append(medium)
    return missing, devices


def refuse_missing(missing: Sequence[spanning.Medium], total: int) -> MissingError:
    names = "; ".join(_what(m, total) for m in missing)
    return MissingError(
        f"The backup spans {total} media and these are in no drive: {names}. Unattended "
        "recover needs them all present; nothing was touched.",
        hint="Put every backup medium into a drive (or attach every ISO) and run recover "
        "again, or run `mkmedia recover` interactively: it asks for each in turn.",
    )
