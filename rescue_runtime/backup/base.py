"""What every backup method provides: its URL rules, its backup (host) and its restore side."""

from __future__ import annotations

from typing import ClassVar


class BackupMethod:
    """One BACKUP method. Subclasses fill in the class attributes and override what they do."""

    name: ClassVar[str] = ""
    # URL schemes BACKUP_URL may use with this method; empty: the method takes no URL.
    url_schemes: ClassVar[tuple[str, ...]] = ()
    # Programs the rescue system needs to restore with this method.
    rescue_programs: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def programs_for(cls, url: str) -> tuple[str, ...]:
        """The programs the rescue system needs to restore from `url` (the build requires
        them): `rescue_programs` plus what the URL's scheme needs to mount it."""
        return cls.rescue_programs

    @classmethod
    def check_url(cls, url: str) -> None:
        """Raise ConfigError when BACKUP_URL is wrong for this method (run before any build)."""
