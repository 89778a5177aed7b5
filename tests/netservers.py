"""File servers of the test's own on 127.0.0.1, each on a free port with its configuration,
state and log in a directory of the test's, killed by its pid when the test ends: the server
end of nfs:// and cifs:// backups.

Both run in user space, so this host's kernel needs neither nfsd nor an SMB server: NFSv4 from
nfs-ganesha (FSAL VFS, one TCP port, no rpcbind, no grace period) and SMB 3 from samba's smbd
(a standalone server with its own passdb, one user whose password the test makes up and hands
out only as a cifs credentials file). A QEMU guest reaches them at 10.0.2.2:PORT (user-mode
networking connects the guest to this host's loopback).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rescue_runtime.run import require, run, spawn

SERVER_START = 60.0  # seconds a server gets to listen (a loaded machine; not a timing check)


@dataclass(frozen=True)
class NfsServer:
    port: int
    pseudo: str  # the export's NFSv4 path: nfs://HOST:PORT<pseudo>


@dataclass(frozen=True)
class SmbServer:
    port: int
    share: str  # cifs://HOST:PORT/<share>
    credentials: Path  # username=, password= (mode 0600)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_listening(proc: subprocess.Popen[bytes], port: int, log: Path, what: str) -> None:
    deadline = time.monotonic() + SERVER_START
    while True:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        if proc.poll() is not None or time.monotonic() > deadline:
            text = log.read_text(errors="replace")[-3000:] if log.exists() else "(no log)"
            raise RuntimeError(f"the test's {what} did not start on port {port}: {text}")
        time.sleep(0.2)


@contextlib.contextmanager
def _running(argv: list[str], port: int, log: Path, what: str) -> Iterator[None]:
    """Start the server in a process group of its own (smbd forks a child per client) and
    kill that group, named by the server's pid, when the context ends."""
    proc = spawn(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, new_session=True)
    try:
        _wait_listening(proc, port, log, what)
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@contextlib.contextmanager
def nfs_server(export: Path, work: Path) -> Iterator[NfsServer]:
    """nfs-ganesha serving `export` read-write (root not squashed) as NFSv4 path /export."""
    ganesha = require("ganesha.nfsd", package="nfs-ganesha (and nfs-ganesha-vfs)")
    work.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = work / "ganesha.conf"
    config.write_text(
        "NFS_CORE_PARAM {\n"
        f"  NFS_Port = {port};\n"
        "  Bind_addr = 127.0.0.1;\n"
        "  Protocols = 4;\n"
        "  Enable_NLM = false;\n"
        "  Enable_RQUOTA = false;\n"
        "  Enable_UDP = false;\n"
        "}\n"
        "NFSv4 {\n"
        "  Graceless = true;\n"  # a fresh server: no clients to wait for
        "  RecoveryBackend = fs;\n"
        f"  RecoveryRoot = {work / 'recovery'};\n"
        "}\n"
        "EXPORT {\n"
        "  Export_Id = 1;\n"
        f"  Path = {export};\n"
        "  Pseudo = /export;\n"
        "  Protocols = 4;\n"
        "  Transports = TCP;\n"
        "  Access_Type = RW;\n"
        "  Squash = No_Root_Squash;\n"
        "  SecType = sys;\n"
        "  FSAL { Name = VFS; }\n"
        "}\n"
    )
    log = work / "ganesha.log"
    argv = [ganesha, "-F", "-f", str(config), "-L", str(log), "-p", str(work / "ganesha.pid")]
    with _running([*argv, "-N", "NIV_EVENT"], port, log, "nfs-ganesha"):
        yield NfsServer(port, "/export")


@contextlib.contextmanager
def smb_server(share: Path, work: Path) -> Iterator[SmbServer]:
    """smbd serving `share` read-write as [backup] to the user root, with a password made up
    here and written only into the credentials file."""
    smbd = require("smbd", package="samba")
    smbpasswd = require("smbpasswd", package="samba")
    work.mkdir(parents=True, exist_ok=True)
    for sub in ("lock", "state", "cache", "private", "pid"):
        (work / sub).mkdir(exist_ok=True)
    port = free_port()
    config = work / "smb.conf"
    config.write_text(
        "[global]\n"
        "  server role = standalone server\n"
        f"  smb ports = {port}\n"
        "  interfaces = lo\n"
        "  bind interfaces only = yes\n"
        "  disable netbios = yes\n"
        f"  pid directory = {work / 'pid'}\n"
        f"  lock directory = {work / 'lock'}\n"
        f"  state directory = {work / 'state'}\n"
        f"  cache directory = {work / 'cache'}\n"
        f"  private dir = {work / 'private'}\n"
        f"  ncalrpc dir = {work / 'lock' / 'ncalrpc'}\n"
        f"  passdb backend = tdbsam:{work / 'private' / 'passdb.tdb'}\n"
        f"  log file = {work / 'smbd.log'}\n"
        "  load printers = no\n"
        "  printing = bsd\n"
        "  printcap name = /dev/null\n"
        "  disable spoolss = yes\n"
        "  server min protocol = SMB3_00\n"
        "[backup]\n"
        f"  path = {share}\n"
        "  read only = no\n"
        "  valid users = root\n"
    )
    password = secrets.token_hex(12)
    run([smbpasswd, "-c", config, "-s", "-a", "root"], input=f"{password}\n{password}\n")
    credentials = work / "cifs.cred"
    fd = os.open(credentials, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"username=root\npassword={password}\n")
    log = work / "smbd.log"
    argv = [smbd, "--foreground", "--no-process-group", "-s", str(config), "-d", "1"]
    with _running(argv, port, log, "smbd"):
        yield SmbServer(port, "backup", credentials)
