"""What every backup method provides: its URL rules, its backup (host) and its restore side."""

from __future__ import annotations

from typing import ClassVar
from urllib.parse import urlsplit

from rescue_runtime.errors import ConfigError


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
    def modules_for(cls, url: str) -> tuple[str, ...]:
        """Kernel modules the rescue system needs to reach the backup at `url` (the build
        adds them to MODULES)."""
        return ()

    @classmethod
    def rescue_files(cls, url: str, options: str) -> tuple[str, ...]:
        """Files the rescue system needs to reach the backup at `url` with BACKUP_OPTIONS
        `options` (the build copies them in, as COPY_AS_IS does)."""
        return ()

    @classmethod
    def check_options(cls, url: str, options: str) -> None:
        """Raise ConfigError when BACKUP_OPTIONS are wrong for `url` (before any build)."""

    @classmethod
    def check_url(cls, url: str) -> None:
        """Raise ConfigError when BACKUP_URL is wrong for this method (run before any build).

        This checks what every method shares: a URL exactly when the method takes one, with
        one of its schemes. A method adds its own rules (a path, a host) by extending this."""
        if not cls.url_schemes:
            if url:
                raise ConfigError(
                    f"BACKUP_URL={url!r} is set but BACKUP={cls.name} takes no URL.",
                    hint="Leave BACKUP_URL empty, or choose a method that writes to a URL.",
                )
            return
        schemes = ", ".join(f"{scheme}://" for scheme in cls.url_schemes)
        if not url:
            raise ConfigError(
                f"BACKUP={cls.name} but BACKUP_URL is empty.",
                hint=f"Set BACKUP_URL to where the backup goes ({schemes}), or set BACKUP=NONE.",
            )
        scheme = urlsplit(url).scheme
        if scheme not in cls.url_schemes:
            found = f"the scheme {scheme!r}" if scheme else "no scheme"
            raise ConfigError(
                f"BACKUP_URL={url!r} has {found}, which BACKUP={cls.name} does not take.",
                hint=f"Write it with one of {schemes}.",
            )
