"""BACKUP_URL parsing: one parser, used on the host and inside the rescue system.

A URL is `scheme://[host]/path`; which schemes a backup method accepts is the method's
business (its `check_url`), this module only splits and validates the shape.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from rescue_runtime.errors import ConfigError

_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*$")


@dataclass(frozen=True)
class Url:
    text: str  # the URL as written
    scheme: str  # lower case: file, iso, nfs, cifs, ...
    host: str  # the network location as written ("user@nas:2222"); empty for file://
    path: str  # percent-decoded, absolute ("/srv/backup")

    def __str__(self) -> str:
        return self.text

    @property
    def user(self) -> str | None:
        return urlsplit(self.text).username

    @property
    def password(self) -> str | None:
        return urlsplit(self.text).password

    @property
    def hostname(self) -> str:
        """The host alone (IPv6 addresses without their brackets)."""
        return urlsplit(self.text).hostname or ""

    @property
    def port(self) -> int | None:
        try:
            return urlsplit(self.text).port
        except ValueError:
            raise ConfigError(
                f"BACKUP_URL={self.text!r} has a port that is not a number from 1 to 65535.",
                hint="Write it as scheme://host:PORT/path.",
            ) from None


EXAMPLE = "file:///srv/backup or iso:///backup"


def url_scheme(text: str, *, setting: str = "BACKUP_URL") -> str:
    """The scheme of a URL, lower case; ConfigError when it has none."""
    example = EXAMPLE
    if "://" not in text:
        raise ConfigError(
            f"{setting}={text!r} is not a URL: it has no scheme (scheme://...).",
            hint=f"Write it as, for example, {example}.",
        )
    scheme = text.split("://", 1)[0].lower()
    if not _SCHEME.match(scheme) or not text.lower().startswith(f"{scheme}://"):
        raise ConfigError(
            f"{setting}={text!r} is not a URL: {text.split('://')[0]!r} is not a scheme name.",
            hint=f"Write it as, for example, {example}.",
        )
    return scheme


def parse_url(text: str, *, setting: str = "BACKUP_URL") -> Url:
    """Split a URL; ConfigError when it has no scheme, no absolute path or stray parts."""
    scheme = url_scheme(text, setting=setting)
    parts = urlsplit(text)
    if parts.query or parts.fragment:
        raise ConfigError(
            f"{setting}={text!r} has a query or fragment ('?' or '#'), which a backup "
            "location cannot use.",
            hint="Percent-encode those characters in the path (%3F, %23) if they are part of it.",
        )
    path = unquote(parts.path)
    if not path.startswith("/"):
        raise ConfigError(
            f"{setting}={text!r} does not name an absolute path (it reads {path!r}).",
            hint="file:// and iso:// URLs take three slashes: file:///srv/backup.",
        )
    if "\0" in path or any(part == ".." for part in path.split("/")):
        raise ConfigError(
            f"{setting}={text!r} has a '..' component or a NUL byte in its path.",
            hint="Write the directory's plain absolute path.",
        )
    return Url(text=text, scheme=scheme, host=parts.netloc, path=path.rstrip("/") or "/")
