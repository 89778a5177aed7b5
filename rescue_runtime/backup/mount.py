"""The backup location as a local directory: file:// as it is; sshfs://, nfs://, cifs:// and
usb:// mounted for the time it is used (and always unmounted afterwards).

What each scheme needs in the rescue system (programs, kernel modules, files), and the checks
on BACKUP_URL and BACKUP_OPTIONS that run before anything is built or mounted, live here too.

Credentials never go on a command line: sshfs runs with BatchMode (no password prompt) and
takes keys through BACKUP_OPTIONS (`IdentityFile=/root/.ssh/backup_key,...`); cifs:// takes a
credentials file (rescue_runtime/backup/netshare.py).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from rescue_runtime.backup import netshare, usbstick
from rescue_runtime.errors import ConfigError
from rescue_runtime.run import run, which
from rescue_runtime.url import Url

# The schemes mounted here (file:// is a directory already, iso:// the rescue medium).
MOUNTED = ("sshfs", "nfs", "cifs", "usb")
PROGRAMS: dict[str, tuple[str, ...]] = {
    "sshfs": ("sshfs", "fusermount3"),
    "nfs": ("mount.nfs",),  # nfs-common
    "cifs": ("mount.cifs",),  # cifs-utils
    "usb": usbstick.PROGRAMS,
}
# cifs's MODULE_SOFTDEP lines lack "pre:", so modprobe (and the build's closure, as kmod does)
# ignores them: the crypto SMB 3 signing and SMB 3.1.1 encryption allocate at mount time
# (cmac(aes), gcm(aes) with ghash and ctr, ccm(aes), ...) is named here, and loaded before
# the mount (without it: "mount error(2)" or "(95)", and "crypto alloc failed" in dmesg).
CIFS_MODULES = (
    "cifs", "cmac", "aes", "gcm", "ghash", "ctr", "ccm", "ecb", "hmac", "md5", "sha256",
    "sha512", "nls_utf8",
)  # fmt: skip
MODULES: dict[str, tuple[str, ...]] = {
    "sshfs": ("fuse",),
    "nfs": ("nfs", "nfsv4", "nfsv3"),
    "cifs": CIFS_MODULES,
    "usb": usbstick.MODULES,
}


def _sshfs_remote(url: Url) -> str:
    host = url.hostname
    if ":" in host:  # IPv6: ssh wants it in brackets before the colon of the path
        host = f"[{host}]"
    return f"{url.user}@{host}" if url.user else host


def check_location(url: Url) -> None:
    """BACKUP_URL's shape for a mounted scheme (ConfigError naming what is wrong)."""
    if url.scheme == "usb":
        usbstick.check_url(url)
    elif url.scheme in ("nfs", "cifs"):
        netshare.check_url(url)
    elif url.scheme == "sshfs":
        if not url.hostname:
            raise ConfigError(
                f"BACKUP_URL={url.text!r} names no server.",
                hint="Write it as sshfs://user@server/path.",
            )
        if url.password is not None:
            raise ConfigError(
                f"BACKUP_URL for {url.hostname} carries a password; a password never "
                "goes into a setting or onto a command line.",
                hint="Use an ssh key: BACKUP_OPTIONS=IdentityFile=/root/.ssh/KEY.",
            )
        url.port  # noqa: B018 - raises ConfigError for a bad port


def check_options(url: Url, options: str) -> None:
    """BACKUP_OPTIONS for the URL (cifs://: a credentials file, never a password)."""
    if url.scheme in ("nfs", "cifs"):
        netshare.check_options(url, options)


def rescue_files(url: Url, options: str) -> tuple[str, ...]:
    """Files the rescue system needs to mount `url`: the cifs credentials file (checked: it
    exists and only its owner reads it)."""
    if url.scheme != "cifs":
        return ()
    credentials = netshare.credentials_file(options)
    if credentials is None:
        return ()
    netshare.check_credentials_file(credentials)
    return (str(credentials),)


def _unmount(mountpoint: Path, *, fuse: bool) -> None:
    helpers = (["fusermount3", "-u"], ["fusermount", "-u"]) if fuse else ()
    for argv in (*helpers, ["umount"]):
        if which(argv[0]) and run([*argv, mountpoint], check=False).ok:
            return


def _load_modules(scheme: str) -> None:
    """Best effort: the kernel asks for a file system's module itself when modprobe works."""
    if which("modprobe"):
        run(["modprobe", "-a", "-b", "-q", *MODULES[scheme]], check=False)


def _mount_argv(url: Url, options: str, mountpoint: Path) -> list[str | os.PathLike[str]]:
    if url.scheme in ("nfs", "cifs"):
        _load_modules(url.scheme)
        return netshare.mount_argv(url, options, mountpoint)
    argv: list[str | os.PathLike[str]] = [
        "sshfs",
        f"{_sshfs_remote(url)}:{url.path}",
        mountpoint,
        "-o",
        "BatchMode=yes",
    ]
    if url.port:
        argv += ["-p", str(url.port)]
    if options:
        argv += ["-o", options]
    return argv


@contextlib.contextmanager
def mounted(url: Url, *, options: str = "", work_dir: Path) -> Iterator[Path]:
    """The local directory that stands for `url`'s path while the context lasts (usb://:
    the stick's backup directory)."""
    if url.scheme == "file":
        yield Path(url.path)
        return
    if url.scheme not in MOUNTED:
        raise ValueError(f"no mount support for {url.scheme}://")
    check_location(url)
    check_options(url, options)
    work_dir.mkdir(parents=True, exist_ok=True)
    mountpoint = Path(tempfile.mkdtemp(prefix="backup-target.", dir=work_dir))
    try:
        if url.scheme == "usb":
            with usbstick.mounted(url, mountpoint, options=options) as directory:
                yield directory
            return
        run(_mount_argv(url, options, mountpoint), what=f"mounting {url} (BACKUP_URL)")
        try:
            yield mountpoint
        finally:
            _unmount(mountpoint, fuse=url.scheme == "sshfs")
    finally:
        with contextlib.suppress(OSError):
            mountpoint.rmdir()
