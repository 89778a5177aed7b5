"""nfs:// and cifs:// backup locations: what mount.nfs and mount.cifs are given, and the checks
on BACKUP_URL and BACKUP_OPTIONS that run before anything is mounted.

- nfs://SERVER[:PORT]/EXPORT -> `mount.nfs SERVER:/EXPORT MOUNTPOINT -o BACKUP_OPTIONS[,port=PORT]`
  (BACKUP_OPTIONS are NFS mount options, e.g. `vers=4.2`; NFSv4 needs no rpcbind or statd).
- cifs://[USER@]SERVER[:PORT]/SHARE[/DIR] -> `mount.cifs //SERVER/SHARE/DIR MOUNTPOINT -o ...`.
  The password comes from a credentials file named in BACKUP_OPTIONS (`credentials=/etc/
  mkmedia/cifs.cred`, mode 0600, lines `username=`, `password=`, `domain=`), never from a
  setting or a command line: `password=` in BACKUP_OPTIONS, `user=NAME%PASSWORD` and a password
  in the URL are refused. `guest` and `sec=krb5*` need no credentials file.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from rescue_runtime.errors import ConfigError, MissingError
from rescue_runtime.url import Url

Option = tuple[str, str | None]  # key, value (None: a flag such as `guest`)

CIFS_PASSWORD_KEYS = ("password", "pass", "password2")
CIFS_CREDENTIAL_KEYS = ("credentials", "cred")


def split_options(options: str) -> list[Option]:
    """BACKUP_OPTIONS as mount options: `a=1,b,c=x` -> [(a, 1), (b, None), (c, x)]."""
    result: list[Option] = []
    for item in options.split(","):
        item = item.strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        result.append((key.strip().lower(), value if sep else None))
    return result


def join_options(options: list[Option]) -> str:
    return ",".join(key if value is None else f"{key}={value}" for key, value in options)


def _value(options: list[Option], keys: tuple[str, ...]) -> str | None:
    for key, value in options:
        if key in keys:
            return value or ""
    return None


def check_url(url: Url) -> None:
    """A server, no password, a port that is a number; cifs:// also a share."""
    example = "nfs://server/export" if url.scheme == "nfs" else "cifs://server/share[/directory]"
    if not url.hostname:
        raise ConfigError(
            f"BACKUP_URL={url.text!r} names no server.", hint=f"Write it as {example}."
        )
    if url.password is not None:
        raise ConfigError(
            f"BACKUP_URL for {url.hostname} carries a password; a password never goes into a "
            "setting or onto a command line.",
            hint="cifs://: put it into a credentials file named by BACKUP_OPTIONS="
            "credentials=/etc/mkmedia/cifs.cred (mode 0600)."
            if url.scheme == "cifs"
            else "NFS takes no password: leave it out of the URL.",
        )
    if url.scheme == "nfs" and url.user:
        raise ConfigError(
            f"BACKUP_URL={url.text!r} names a user; NFS mounts take none.",
            hint=f"Write it as {example}.",
        )
    url.port  # noqa: B018 - raises ConfigError for a bad port
    if url.scheme == "cifs" and url.path == "/":
        raise ConfigError(
            f"BACKUP_URL={url.text!r} names no share on {url.hostname}.",
            hint=f"Write it as {example}.",
        )


def check_options(url: Url, options: str) -> None:
    """BACKUP_OPTIONS for the URL's scheme; no file is looked at (that happens at mount time,
    on the machine that mounts)."""
    parsed = split_options(options)
    port = _value(parsed, ("port",))
    if url.port is not None and port is not None and port != str(url.port):
        raise ConfigError(
            f"BACKUP_URL={url.text!r} has the port {url.port}, BACKUP_OPTIONS says port={port}.",
            hint="Give the port once, in the URL or in BACKUP_OPTIONS.",
        )
    if url.scheme != "cifs":
        return
    for key, value in parsed:
        if key in CIFS_PASSWORD_KEYS or (
            key in ("user", "username") and value is not None and "%" in value
        ):
            raise ConfigError(
                f"BACKUP_OPTIONS carries a password ({key}=...) for {url.text}; a password "
                "never goes into a setting or onto a command line (ps shows it to every user).",
                hint="Put username= and password= lines into a credentials file (mode 0600) and "
                "name it instead: BACKUP_OPTIONS=credentials=/etc/mkmedia/cifs.cred.",
            )
    credentials = _value(parsed, CIFS_CREDENTIAL_KEYS)
    kerberos = (_value(parsed, ("sec",)) or "").startswith("krb5")
    if credentials is None and _value(parsed, ("guest",)) is None and not kerberos:
        raise ConfigError(
            f"BACKUP_URL={url.text!r} needs credentials: mount.cifs would ask for a password on "
            "the terminal.",
            hint="Name a credentials file (mode 0600, lines username= and password=): "
            "BACKUP_OPTIONS=credentials=/etc/mkmedia/cifs.cred; or `guest` for a share without "
            "a password, or sec=krb5 with a Kerberos ticket.",
        )
    if credentials is not None and not credentials.startswith("/"):
        raise ConfigError(
            f"BACKUP_OPTIONS names the credentials file {credentials!r}, which is not an "
            "absolute path.",
            hint="Write it as credentials=/etc/mkmedia/cifs.cred.",
        )


def credentials_file(options: str) -> Path | None:
    """The cifs credentials file BACKUP_OPTIONS names (it goes into the rescue system)."""
    value = _value(split_options(options), CIFS_CREDENTIAL_KEYS)
    return Path(value) if value else None


def check_credentials_file(path: Path) -> None:
    """The file is there and no other user can read it."""
    try:
        st = path.stat()
    except OSError as exc:
        raise MissingError(
            f"The cifs credentials file {path} (BACKUP_OPTIONS credentials=) cannot be read: "
            f"{exc.strerror or exc}.",
            hint="Create it (mode 0600) with the lines username=USER and password=PASSWORD.",
        ) from None
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(
            f"The cifs credentials file {path} (BACKUP_OPTIONS credentials=) is not a file.",
            hint="Name a file with the lines username=USER and password=PASSWORD.",
        )
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"The cifs credentials file {path} holds a password but is open to other users "
            f"(mode {stat.S_IMODE(st.st_mode):04o}).",
            hint=f"chmod 600 {path}",
        )


def _with_port(url: Url, options: list[Option]) -> list[Option]:
    if url.port is not None and _value(options, ("port",)) is None:
        return [*options, ("port", str(url.port))]
    return options


def _host(url: Url) -> str:
    return f"[{url.hostname}]" if ":" in url.hostname else url.hostname


def mount_argv(url: Url, options: str, mountpoint: Path) -> list[str | os.PathLike[str]]:
    """The mount helper's command line (called directly: util-linux mount would only look it up)."""
    parsed = _with_port(url, split_options(options))
    if url.scheme == "nfs":
        argv: list[str | os.PathLike[str]] = ["mount.nfs", f"{_host(url)}:{url.path}", mountpoint]
    elif url.scheme == "cifs":
        if url.user and _value(parsed, ("user", "username")) is None:
            parsed = [("username", url.user), *parsed]
        credentials = credentials_file(options)
        if credentials is not None:
            check_credentials_file(credentials)
        argv = ["mount.cifs", f"//{_host(url)}{url.path}", mountpoint]
    else:
        raise ValueError(f"not a network share: {url.scheme}://")
    return [*argv, "-o", join_options(parsed)] if parsed else argv
