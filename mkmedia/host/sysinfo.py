"""The system definition: what machine mkmedia runs on (ARCH, OS, vendor, version, firmware)."""

from __future__ import annotations

import os
import platform
import re
import socket
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mkmedia.kernel.choice import find_kernels

# The fields recipes can use, each as ${FIELD} in upper case.
RECIPE_VARIABLES = ("hostname", "arch", "os", "os_vendor", "os_version", "os_codename", "firmware")


@dataclass(frozen=True)
class SystemInfo:
    hostname: str
    arch: str
    os: str
    os_vendor: str
    os_version: str
    os_codename: str
    os_pretty_name: str
    firmware: str  # UEFI | BIOS
    running_kernel: str
    kernels: list[str] = field(default_factory=list)  # versions with an image in /boot

    def variables(self) -> dict[str, str]:
        """The values recipes can use as ${NAME}."""
        return {name.upper(): getattr(self, name) for name in RECIPE_VARIABLES}

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def parse_os_release(text: str) -> dict[str, str]:
    """Parse os-release(5): KEY=value lines, values optionally quoted."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, raw = line.split("=", 1)
        raw = raw.strip()
        if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'":
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        values[key.strip()] = raw
    return values


def read_os_release(root: Path = Path("/")) -> dict[str, str]:
    for candidate in ("etc/os-release", "usr/lib/os-release"):
        path = root / candidate
        if path.is_file():
            return parse_os_release(path.read_text(errors="replace"))
    return {}


def installed_kernels(boot_dir: Path = Path("/boot")) -> list[str]:
    """Kernel versions that have an image in /boot, oldest first."""
    return [k.version for k in find_kernels(boot_dir)]


def detect(root: Path = Path("/")) -> SystemInfo:
    release = read_os_release(root)
    uname = platform.uname()
    arch = uname.machine or "unknown"
    return SystemInfo(
        hostname=socket.gethostname().split(".")[0] or "localhost",
        arch=arch,
        os="GNU/Linux" if uname.system == "Linux" else uname.system,
        os_vendor=release.get("ID", "unknown").lower(),
        os_version=release.get("VERSION_ID", "unknown"),
        os_codename=release.get("VERSION_CODENAME", ""),
        os_pretty_name=release.get("PRETTY_NAME", ""),
        firmware="UEFI" if (root / "sys/firmware/efi").is_dir() else "BIOS",
        running_kernel=uname.release,
        kernels=installed_kernels(root / "boot"),
    )


def is_root() -> bool:
    return os.geteuid() == 0
