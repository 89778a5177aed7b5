"""sshd in the rescue system: only with authorized keys; host keys generated at boot."""

from __future__ import annotations

import os
from pathlib import Path

from rescue_runtime.rescueconf import RescueConfig
from rescue_runtime.run import run, which

HOST_KEY_TYPES = ("ed25519", "ecdsa")

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
    # Host keys are made here, at boot: media must not share one identity across machines.
    # Ed25519 and ECDSA only: RSA key generation takes minutes on slow or emulated CPUs.
    for kind in HOST_KEY_TYPES:
        key = Path(f"/etc/ssh/ssh_host_{kind}_key")
        if not key.exists():
            run(
                ["ssh-keygen", "-q", "-t", kind, "-N", "", "-f", str(key)],
                what=f"generating the {kind} ssh host key",
            )
    password = "yes" if config.ssh_root_password_hash else "no"
    permit = "yes" if config.ssh_root_password_hash else "prohibit-password"
    host_keys = "".join(f"HostKey /etc/ssh/ssh_host_{kind}_key\n" for kind in HOST_KEY_TYPES)
    config_text = SSHD_CONFIG.format(permit=permit, password=password) + host_keys
    Path("/etc/ssh/sshd_config").write_text(config_text)
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
