"""An sshd of the test's own on 127.0.0.1 (a free port, its own host and client keys), killed
by its pid when the test ends: the server end of sshfs:// backups."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rescue_runtime.run import require, run, spawn


@dataclass(frozen=True)
class SshServer:
    port: int
    client_key: Path

    @property
    def options(self) -> str:
        """BACKUP_OPTIONS for sshfs: the key, and no known_hosts of the machine touched."""
        return (
            f"IdentityFile={self.client_key},StrictHostKeyChecking=no,UserKnownHostsFile=/dev/null"
        )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def ssh_server(directory: Path) -> Iterator[SshServer]:
    sshd = require("sshd", package="openssh-server")
    directory.mkdir(parents=True, exist_ok=True)
    for name in ("host_key", "client_key"):
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", directory / name])
    port = _free_port()
    config = directory / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {directory / 'host_key'}\n"
        f"AuthorizedKeysFile {directory / 'client_key.pub'}\nPermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
        "StrictModes no\nSubsystem sftp internal-sftp\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)  # its privilege separation directory
    proc = spawn(
        [sshd, "-D", "-f", str(config), "-E", str(directory / "sshd.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                log = (directory / "sshd.log").read_text(errors="replace")
                raise RuntimeError(f"the test sshd did not start: {log}")
            time.sleep(0.1)
        yield SshServer(port, directory / "client_key")
    finally:
        proc.kill()
        proc.wait()
