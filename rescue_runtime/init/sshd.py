"""sshd in the rescue system: only with authorized keys; host keys generated at boot."""

from __future__ import annotations

import os
from pathlib import Path

from rescue_runtime.rescueconf import RescueConfig
from rescue_runtime.run import run, which

SSHD_CONFIG = """\
# Written by the mkmedia rescue system at boot
PermitRootLogin {permit}
PasswordAuthentication {password}
KbdInteractiveAuthentication no
PubkeyAuthentication yes
AuthorizedKeysFile /root/.ssh/authorized_keys
UsePAM no
PrintMotd no
Subsystem sftp internal-sftp
"""


def start_sshd(config: RescueConfig) -> str:
    """Start sshd when keys (or a password hash) were configured; return what happened."""
    if not config.ssh_authorized_keys and not config.ssh_root_password_hash:
        return "not started (no authorized keys configured)"
    sshd = which("sshd")
    if sshd is None or which("ssh-keygen") is None:
        return "not started: sshd or ssh-keygen is missing in the rescue system"
    ssh_dir = Path("/root/.ssh")
    ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    keys = ssh_dir / "authorized_keys"
    keys.write_text("".join(key.strip() + "\n" for key in config.ssh_authorized_keys))
    keys.chmod(0o600)
    if config.ssh_root_password_hash:
        set_root_password_hash(config.ssh_root_password_hash)
    Path("/etc/ssh").mkdir(parents=True, exist_ok=True)
    # host keys are made here, at boot: media must not share one identity across machines
    run(["ssh-keygen", "-A"], what="generating ssh host keys")
    password = "yes" if config.ssh_root_password_hash else "no"
    permit = "yes" if config.ssh_root_password_hash else "prohibit-password"
    Path("/etc/ssh/sshd_config").write_text(SSHD_CONFIG.format(permit=permit, password=password))
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    # sshd detaches itself once it listens; its exit status tells whether it could start
    run([sshd, "-f", "/etc/ssh/sshd_config"], what="starting sshd")
    return "started"


def set_root_password_hash(crypt_hash: str) -> None:
    shadow = Path("/etc/shadow")
    lines = shadow.read_text().splitlines() if shadow.exists() else []
    others = [line for line in lines if not line.startswith("root:")]
    shadow.write_text("\n".join([f"root:{crypt_hash}:19000:0:99999:7:::", *others]) + "\n")
    os.chmod(shadow, 0o600)
