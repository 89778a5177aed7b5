"""The kernel command line options the rescue system understands. Unknown ones are ignored."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field


@dataclass
class BootOptions:
    unattended: bool = False
    debug: bool = False
    shell: bool = False  # mkmedia.shell: stop before anything runs
    update_url: str = ""
    ip: list[str] = field(default_factory=list)
    consoles: list[str] = field(default_factory=list)  # as given: tty0, ttyS0,115200


def parse(text: str) -> BootOptions:
    options = BootOptions()
    try:
        words = shlex.split(text)
    except ValueError:  # an unbalanced quote: fall back to plain splitting
        words = text.split()
    for word in words:
        key, _, value = word.partition("=")
        if key == "unattended":
            options.unattended = True
        elif key == "mkmedia.debug":
            options.debug = True
        elif key == "mkmedia.shell":
            options.shell = True
        elif key == "mkmedia.update":
            options.update_url = value
        elif key == "ip" and value:
            options.ip.append(value)
        elif key == "console" and value:
            options.consoles.append(value)
    return options


def console_devices(consoles: list[str]) -> list[str]:
    """Device paths of the consoles named on the command line (tty0 means the VGA tty1)."""
    devices: list[str] = []
    for console in consoles:
        name = console.split(",", 1)[0]
        if name in ("tty0", "tty"):
            name = "tty1"
        device = f"/dev/{name}"
        if device not in devices:
            devices.append(device)
    return devices or ["/dev/console"]
