"""The further media of a spanned iso:// backup, in the rescue system: found by their marker
(medium.scan_media), mounted read-only while their volumes are read, asked for in turn.

Interactive, a medium not in any drive is asked for ("insert medium 2 of 3 and press Enter");
the first medium is unmounted first, so a machine with one drive can take the next disc.
Unattended, every present medium is searched, and a missing one stops recover in verify
(`missing_media`), before any disk is written. `further_media` is that decision, shared by
recover's verify and `recover --demo`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rescue_runtime.backup import manifest as manifests
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
from rescue_runtime.run import run


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


@dataclass
class FurtherMedia:
    """How restore reaches a spanned backup's further media."""

    finder: IsoMediumFinder
    note: str  # what was found, for the operator


def further_media(
    directory: Path,
    manifest: dict[str, object],
    work_dir: Path,
    *,
    ask: Callable[[str, str], str] | None,
    protected: set[str],
    blocks: SysBlock | None = None,
    mounter: Mounter | None = None,
) -> FurtherMedia | None:
    """None for a backup on one medium. Otherwise, unattended (`ask` None): every further
    medium must be in a drive and its volumes intact now, or a refusal names the missing
    ones before anything is written; interactive: restore asks for each in turn.
    `directory`: the backup on the first medium, its mount point the directory above (in
    `work_dir`); `protected` gets the disks of the further media present, refusal or not."""
    media = spanning.read_media_file(directory)
    if not media:
        return None
    total = 1 + len(media)
    mountpoint = directory.parent

    def release() -> None:  # one drive: the first disc must come out before the next goes in
        run(["umount", mountpoint], check=False)

    blocks = blocks or SysBlock()
    mounter = mounter or Iso9660Mounter()
    # Not the first medium's work_dir: a scan mounts every drive at <dir>/medium-<name> and
    # takes what it finds mounted there for a leftover, so it would unmount the first medium.
    scans = work_dir / "further-media"
    finder = IsoMediumFinder(
        directory.name, scans, ask=ask, release=release, blocks=blocks, mounter=mounter
    )
    if ask is not None:
        return FurtherMedia(
            finder, f"the backup spans {total} media: restore asks for each in turn"
        )
    missing, devices = missing_media(media, scans, blocks=blocks, mounter=mounter)
    protected |= devices
    if missing:
        raise refuse_missing(missing, total)
    records = {str(v["name"]): v for v in manifests.volumes(manifest)}
    for medium in media:
        with finder.medium(medium, total) as place:
            for name in medium.volumes:
                spanning.check_volume(place / name, records[name])
    return FurtherMedia(finder, f"the backup spans {total} media, all present and checked")
