"""Full, incremental and differential backups (BACKUP_TYPE, ReaR's names), GNU tar's
--listed-incremental snapshot files, and the chain a manifest records.

A backup directory holds one chain: a full archive first (level 0), then incremental ones
(each against the archive before it) or one differential (against the full). Every archive
of the chain keeps its snapshot file (`<archive>.snar`, its sha256 in the manifest): the next
archive starts from a copy of its base's snapshot. Restore applies the archives in order,
the later ones with --listed-incremental=/dev/null so the files deleted in between go again;
the chain is checked whole (every link present, each naming the one before) before any write.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rescue_runtime.backup.manifest import BackupError

TYPES = ("full", "incremental", "differential")
FULL_NAME = "backup"


@dataclass(frozen=True)
class Archive:
    """One archive of the chain as the manifest records it."""

    name: str  # "backup", "backup-002-incremental"
    type: str  # full | incremental | differential
    level: int  # 0 for the full, its base's + 1 otherwise
    predecessor: str | None  # the archive this one was taken against
    volumes: tuple[str, ...]  # file names, in order
    files: int
    snapshot: str | None = None  # the --listed-incremental file (None: a plain full backup)
    snapshot_sha256: str | None = None

    def record(self) -> dict[str, object]:
        return {
            "name": self.name,
            "type": self.type,
            "level": self.level,
            "predecessor": self.predecessor,
            "volumes": list(self.volumes),
            "files": self.files,
            "snapshot": self.snapshot,
            "snapshot_sha256": self.snapshot_sha256,
        }

    @classmethod
    def of(cls, entry: dict[str, object]) -> Archive:
        volumes = entry.get("volumes")
        assert isinstance(volumes, list)
        predecessor = entry.get("predecessor")
        snapshot = entry.get("snapshot")
        digest = entry.get("snapshot_sha256")
        return cls(
            name=str(entry["name"]),
            type=str(entry["type"]),
            level=int(str(entry["level"])),
            predecessor=None if predecessor is None else str(predecessor),
            volumes=tuple(str(v) for v in volumes),
            files=int(str(entry["files"])),
            snapshot=None if snapshot is None else str(snapshot),
            snapshot_sha256=None if digest is None else str(digest),
        )


def archives(manifest: dict[str, object]) -> list[Archive]:
    """The manifest's chain; a manifest from before chains is one full archive."""
    entries = manifest.get("archives")
    if entries is None:
        volumes = manifest.get("volumes")
        assert isinstance(volumes, list)
        names = tuple(str(v["name"]) for v in volumes)
        return [Archive(FULL_NAME, "full", 0, None, names, int(str(manifest["files"])))]
    if not isinstance(entries, list) or not entries:
        raise BackupError("The backup manifest lists no archives.", hint="Make a new backup.")
    return [Archive.of(entry) for entry in entries]


def check_chain(chain: list[Archive], listed_volumes: set[str], where: Path) -> None:
    """The chain is unbroken: a full first, each later archive naming the one before it as
    its predecessor (a differential: the full), every volume listed with a size and sha256."""
    for position, archive in enumerate(chain):
        before = chain[position - 1] if position else None
        if position == 0 and archive.type != "full":
            raise BackupError(
                f"The backup chain in {where} starts with the {archive.type} archive "
                f"{archive.name}, not a full one: the full backup it builds on is missing; "
                "nothing was restored.",
                hint="Make a new full backup (BACKUP_TYPE=full).",
            )
        if before is not None:
            expected = chain[0].name if archive.type == "differential" else before.name
            if archive.type == "full" or archive.predecessor != expected:
                raise BackupError(
                    f"The backup chain in {where} is broken: {archive.name} ({archive.type}) "
                    f"was taken against {archive.predecessor}, but the archive before it is "
                    f"{before.name}; the link {archive.predecessor} is missing. Nothing was "
                    "restored.",
                    hint="Restore from a complete copy, or make a new full backup.",
                )
        missing = [v for v in archive.volumes if v not in listed_volumes]
        if missing or not archive.volumes:
            raise BackupError(
                f"The backup chain in {where} is broken: the archive {archive.name} has no "
                f"checked volume {', '.join(missing) or '(none listed)'}; nothing was restored.",
                hint="Restore from a complete copy, or make a new full backup.",
            )


@dataclass(frozen=True)
class NextArchive:
    """What this run makes: its name, type, level, and the archives it keeps from before."""

    name: str
    type: str
    level: int
    predecessor: Archive | None  # its base (its snapshot file is copied to start from)
    kept: tuple[Archive, ...]  # the earlier archives the new chain keeps


def plan_next(backup_type: str, previous: list[Archive] | None) -> NextArchive:
    """The archive a BACKUP_TYPE run makes given the directory's chain (None: no backup): a
    full one when asked, or when there is no chain with snapshot files to build on."""
    if backup_type not in TYPES:
        raise BackupError(f"BACKUP_TYPE={backup_type!r} is not one of {', '.join(TYPES)}.")
    usable = bool(previous) and all(a.snapshot for a in previous or [])
    if backup_type == "full" or not usable or previous is None:
        return NextArchive(FULL_NAME, "full", 0, None, ())
    number = 1 + max((_number(a.name) for a in previous), default=0)
    name = f"{FULL_NAME}-{number:03d}-{backup_type}"
    if backup_type == "differential":
        return NextArchive(name, backup_type, 1, previous[0], (previous[0],))
    last = previous[-1]
    return NextArchive(name, backup_type, last.level + 1, last, tuple(previous))


def _number(name: str) -> int:
    parts = name.split("-")
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else 0
