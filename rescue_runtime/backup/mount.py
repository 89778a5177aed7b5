"""The backup location as a local directory: file:// as it is, sshfs:// mounted for the time
it is used (and always unmounted afterwards).

Credentials never go on a command line: sshfs runs with BatchMode (no password prompt) and
takes keys through BACKUP_OPTIONS (`IdentityFile=/root/.ssh/backup_key,...`).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from rescue_runtime.run import run, which
from rescue_runtime.url import Url


def _sshfs_remote(url: Url) -> str:
    host = url.hostname
    if ":" in host:  # IPv6: ssh wants it in brackets before the colon of the path
        host = f"[{host}]"
    return f"{url.user}@{host}" if url.user else host


def _unmount(mountpoint: Path) -> None:
    for argv in (["fusermount3", "-u"], ["fusermount", "-u"], ["umount"]):
        if which(argv[0]) and run([*argv, mountpoint], check=False).ok:
            return


@contextlib.contextmanager
def mounted(url: Url, *, options: str = "", work_dir: Path) -> Iterator[Path]:
    """The local directory that stands for `url`'s path while the context lasts."""
    if url.scheme == "file":
        yield Path(url.path)
        return
    if url.scheme != "sshfs":
        raise ValueError(f"no mount support for {url.scheme}://")
    work_dir.mkdir(parents=True, exist_ok=True)
    mountpoint = Path(tempfile.mkdtemp(prefix="backup-target.", dir=work_dir))
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
    try:
        run(argv, what=f"mounting {url} (BACKUP_URL)")
        try:
            yield mountpoint
        finally:
            _unmount(mountpoint)
    finally:
        with contextlib.suppress(OSError):
            mountpoint.rmdir()
