"""BACKUP=NONE: the media carries no backup; restore is left to the operator."""

from __future__ import annotations

from rescue_runtime.backup.base import BackupMethod
from rescue_runtime.errors import ConfigError


class NoBackup(BackupMethod):
    name = "NONE"

    @classmethod
    def check_url(cls, url: str) -> None:
        if url:
            raise ConfigError(
                f"BACKUP_URL={url!r} is set but BACKUP=NONE makes no backup.",
                hint="Set BACKUP to a backup method, or leave BACKUP_URL empty.",
            )


METHOD = NoBackup
