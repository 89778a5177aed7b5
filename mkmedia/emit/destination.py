"""Where outputs go: OUTPUT_URL (file:// here; nfs:// and cifs:// come with mounting)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from rescue_runtime.errors import ConfigError

DEFAULT_OUTPUT_DIR = Path("/var/lib/mkmedia/output")


def output_dir(output_url: str | None, *, setting: str = "OUTPUT_URL") -> Path:
    """The local directory an emitter writes into for OUTPUT_URL (None: the default)."""
    if output_url is None:
        return DEFAULT_OUTPUT_DIR
    parts = urlsplit(output_url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ConfigError(
                f"{setting} {output_url!r} names the host {parts.netloc!r}; file:// URLs are "
                "local paths.",
                hint="Write it as file:///path/to/directory (three slashes).",
            )
        path = Path(unquote(parts.path))
        if not path.is_absolute():
            raise ConfigError(f"{setting} {output_url!r} does not name an absolute directory.")
        return path
    if parts.scheme in ("nfs", "cifs"):
        raise ConfigError(
            f"{setting} {output_url!r} needs the {parts.scheme} mount support, which this "
            "version of mkmedia does not have yet.",
            hint="Use a file:// URL (a locally mounted directory works).",
        )
    raise ConfigError(
        f"{setting} {output_url!r} has the scheme {parts.scheme!r}; supported: file://.",
        hint=f"Set {setting} to file:///directory (OUTPUT_URL: or leave it unset for "
        f"{DEFAULT_OUTPUT_DIR}).",
    )
