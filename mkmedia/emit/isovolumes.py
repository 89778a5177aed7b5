"""An iso:// backup larger than one medium (ISO_MAX_SIZE): its volumes spread over several ISOs.

The rescue ISO carries the manifest, the first volumes and backup-media.json; each further
ISO (<prefix>-vol002.iso, ...) is a plain data ISO with the marker /mkmedia/id-<id>V<NNN>
(rescue_runtime/backup/spanning.py) and the same backup directory holding its volumes. The
rescue system finds them by that marker (rescue_runtime/backup/spanmedia.py).
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from mkmedia.emit import Artifact
from mkmedia.emit.isotree import IsoTree
from mkmedia.emit.labels import volume_labels
from rescue_runtime import atomic
from rescue_runtime.backup import spanning
from rescue_runtime.backup.medium import marker_path
from rescue_runtime.errors import ConfigError

MiB = 1024**2
# What an ISO takes besides its files (descriptors, directories, Joliet and Rock Ridge).
ISO_OVERHEAD = 4 * MiB


def plan_media(
    volumes: Sequence[tuple[str, int]], *, capacity: int, first_reserve: int
) -> list[list[str]]:
    """The volumes of each medium, in order: as many as fit, the first medium after the
    rescue system's `first_reserve` bytes. A volume larger than a medium is refused."""
    room = capacity - ISO_OVERHEAD
    media: list[list[str]] = [[]]
    used = first_reserve
    for name, size in volumes:
        if size > room:
            raise ConfigError(
                f"The backup volume {name} ({size // MiB} MiB) does not fit on one medium "
                f"(ISO_MAX_SIZE={capacity // MiB} MiB).",
                hint="Set BACKUP_VOLUME_SIZE (MiB) below ISO_MAX_SIZE.",
            )
        if used + size > room:
            media.append([])
            used = 0
        media[-1].append(name)
        used += size
    if not media[0] and first_reserve > room:
        raise ConfigError(
            f"The rescue system alone ({first_reserve // MiB} MiB) does not fit on one medium "
            f"of ISO_MAX_SIZE={capacity // MiB} MiB.",
            hint="Raise ISO_MAX_SIZE to the medium's capacity (e.g. 4480 for a DVD).",
        )
    return media


def spread(
    payload: Path, media: list[list[str]], medium_id: str, staging: Path
) -> list[tuple[spanning.Medium, Path]]:
    """Move the volumes of media 2, 3, ... out of the payload directory (into `staging`/NNN/
    <backup name>) and write backup-media.json beside the manifest; returns each further
    medium with its directory."""
    further: list[tuple[spanning.Medium, Path]] = []
    for number, names in enumerate(media[1:], start=2):
        medium = spanning.Medium(number, spanning.volume_marker_id(medium_id, number), tuple(names))
        directory = staging / f"{number:03d}" / payload.name
        directory.mkdir(parents=True)
        for name in names:
            shutil.move(payload / name, directory / name)
        further.append((medium, directory))
    spanning.write_media_file(payload, [m for m, _ in further])
    return further


def write_volume_iso(
    output: Path,
    *,
    medium: spanning.Medium,
    directory: Path,
    host: str,
    total: int,
    epoch: int,
    work_dir: Path,
) -> Artifact:
    """Medium `medium.number` of `total`: its marker and its volumes under the backup's
    directory name, a plain (not bootable) ISO."""
    tree = IsoTree()
    work_dir.mkdir(parents=True, exist_ok=True)
    text = f"mkmedia backup medium {medium.number} of {total} for {host}\n"
    tree.add_bytes(f"/{marker_path(medium.marker_id)}", text.encode(), work_dir)
    tree.add_tree(directory.name, directory)
    label = f"BACKUP_{medium.number:03d}_{host.split('.')[0].upper()}"[:32]
    labels = volume_labels("".join(c if c.isalnum() else "_" for c in label))
    with atomic.atomic_path(output) as partial, open(partial, "wb") as out:
        tree.write(
            out,
            labels=labels,
            epoch=epoch,
            boot=[],
            boot_catalog="/mkmedia/boot.cat",
            hybrid=False,
            mbr_id=0,
        )
    return Artifact.of(output, "iso-volume")
