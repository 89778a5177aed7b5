"""Where an overlay comes from: a path, file://, http(s)://; RECOVERY_UPDATE_URL's templates.

RECOVERY_UPDATE_URL may name the machine it runs on, so one media serves many machines of one
hardware class: ${HOSTNAME}, ${MAC} (of the first link with carrier, /sys/class/net) and
${SERIAL} (DMI product serial). Only the variables a URL uses are looked up.
"""

from __future__ import annotations

import http.client
import re
import shutil
import socket
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote, urlsplit

from rescue_runtime.errors import ConfigError, MkmediaError
from rescue_runtime.update.overlay import DEFAULT_MAX_BYTES, refused

DOWNLOAD_TIMEOUT = 60.0
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class FetchError(MkmediaError):
    """The overlay could not be fetched: nothing was changed."""


def first_mac(sys_dir: Path = Path("/sys")) -> str:
    """The MAC address of the first link (by name) with carrier, lower case with colons."""
    net = sys_dir / "class/net"
    names = sorted(p.name for p in net.iterdir()) if net.is_dir() else []
    for name in names:
        if name == "lo":
            continue
        try:
            carrier = (net / name / "carrier").read_text().strip()
            address = (net / name / "address").read_text().strip().lower()
        except OSError:  # a link that is down cannot report carrier (EINVAL)
            continue
        if carrier == "1" and address and address != "00:00:00:00:00:00":
            return address
    raise ConfigError(
        f"RECOVERY_UPDATE_URL uses ${{MAC}}, but no network link in {net} has carrier.",
        hint="Connect a cable (or bring the link up), or give the overlay's URL to "
        "`mkmedia update URL` directly.",
    )


def dmi_serial(sys_dir: Path = Path("/sys")) -> str:
    path = sys_dir / "class/dmi/id/product_serial"
    try:
        serial = path.read_text().strip()
    except OSError as exc:
        raise ConfigError(
            f"RECOVERY_UPDATE_URL uses ${{SERIAL}}, but {path} cannot be read ({exc}).",
            hint="This machine's firmware gives no DMI serial: use ${HOSTNAME} or ${MAC}.",
        ) from exc
    if not serial:
        raise ConfigError(
            f"RECOVERY_UPDATE_URL uses ${{SERIAL}}, but {path} is empty.",
            hint="This machine's firmware gives no DMI serial: use ${HOSTNAME} or ${MAC}.",
        )
    return serial


def template_values(sys_dir: Path = Path("/sys")) -> dict[str, Callable[[], str]]:
    return {
        "HOSTNAME": socket.gethostname,
        "MAC": lambda: first_mac(sys_dir),
        "SERIAL": lambda: dmi_serial(sys_dir),
    }


def expand_template(text: str, values: dict[str, Callable[[], str]]) -> str:
    """Replace each ${NAME}; ConfigError for a name that is not one of `values`."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise ConfigError(
                f"RECOVERY_UPDATE_URL={text!r} uses ${{{name}}}, which is not a template variable.",
                hint=f"The variables are {', '.join('${' + v + '}' for v in values)}.",
            )
        return values[name]()

    return _VARIABLE.sub(one, text)


def fetch(source: str, dest: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
    """Copy the overlay `source` (path or URL) to `dest`; FetchError says why it could not."""
    scheme = source.split("://", 1)[0].lower() if "://" in source else ""
    if scheme in ("", "file"):
        path = Path(unquote(urlsplit(source).path) if scheme else source)
        _copy_local(path, source, dest, max_bytes)
    elif scheme in ("http", "https"):
        _download(source, dest, max_bytes)
    elif scheme == "nfs":
        raise FetchError(
            f"Cannot fetch the overlay {source}: nfs:// is not available in this rescue "
            "system (it has no NFS client to mount with). Nothing was changed.",
            hint="Serve the overlay over http:// or https://, or copy it onto a disk and give "
            "its path.",
        )
    else:
        raise FetchError(
            f"Cannot fetch the overlay {source}: the scheme {scheme}:// is not supported.",
            hint="Give a path, a file:// URL or an http(s):// URL.",
        )


def _copy_local(path: Path, source: str, dest: Path, max_bytes: int) -> None:
    if not path.is_file():
        raise FetchError(
            f"Cannot fetch the overlay {source}: {path} is not a file. Nothing was changed.",
            hint="Check the path (mount the disk that has it first).",
        )
    size = path.stat().st_size
    if size > max_bytes:
        raise refused(source, f"the archive has {size} bytes, over the limit of {max_bytes}")
    shutil.copyfile(path, dest)


def _download(url: str, dest: Path, max_bytes: int) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": "mkmedia-update"})
    try:
        with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT) as response:
            length = response.headers.get("Content-Length")
            if length is not None and length.isdigit() and int(length) > max_bytes:
                raise refused(
                    url, f"the server announces {length} bytes, over the limit of {max_bytes}"
                )
            received = 0
            with dest.open("wb") as out:
                while chunk := response.read(1 << 16):
                    received += len(chunk)
                    if received > max_bytes:
                        raise refused(url, f"it is over the limit of {max_bytes} bytes")
                    out.write(chunk)
            if length is not None and length.isdigit() and received < int(length):
                raise refused(
                    url, f"the download stopped after {received} of {length} bytes (truncated)"
                )
    except urllib.error.HTTPError as exc:
        raise FetchError(
            f"Cannot fetch the overlay {url}: the server answered {exc.code} {exc.reason}. "
            "Nothing was changed.",
            hint="Check the URL (and, for RECOVERY_UPDATE_URL, what its templates expanded to).",
        ) from exc
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        raise FetchError(
            f"Cannot fetch the overlay {url}: {reason}. Nothing was changed.",
            hint="Check the network (ip addr; the rescue system configures it at boot) and "
            "that the server is reachable.",
        ) from exc
