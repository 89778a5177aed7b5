"""Placeholder: the backup's place in the rescue system (the medium branch replaces this)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rescue_runtime.errors import MissingError
from rescue_runtime.rescueconf import RescueConfig
from rescue_runtime.url import parse_url


@dataclass
class LocatedBackup:
    directory: Path
    devices: set[str] = field(default_factory=set)


@contextlib.contextmanager
def located_backup(config: RescueConfig, work_dir: Path) -> Iterator[LocatedBackup]:
    parsed = parse_url(config.backup_url)
    if parsed.scheme != "file":
        raise MissingError(f"BACKUP_URL={config.backup_url!r}: not located in this version yet.")
    directory = Path(parsed.path) / config.hostname.split(".")[0]
    if not directory.is_dir():
        raise MissingError(f"The backup directory {directory} does not exist.")
    yield LocatedBackup(directory)


def rescue_medium_devices() -> set[str]:
    return set()
