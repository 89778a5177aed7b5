"""The rescue system's own configuration: /etc/mkmedia/rescue.json, written at build time.

It carries what the rescue system must know about the host it belongs to (name, backup, saved
network, consoles, modules to load, ssh keys) without needing the builder's YAML stack.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from rescue_runtime.errors import ConfigError

RESCUE_CONF = Path("/etc/mkmedia/rescue.json")
# The user's hooks of the rescue workflows: <stage>/{pre,post}/, as on the host.
HOOKS_DIR = Path("/etc/mkmedia/hooks.d")
FORMAT_VERSION = 1


@dataclass
class SavedInterface:
    name: str
    mac: str
    addresses: list[str] = field(default_factory=list)  # CIDR
    gateway: str = ""
    mtu: int = 0
    driver: str = ""  # the kernel driver of its card (finalize maps new cards by it)


@dataclass
class RescueConfig:
    hostname: str = "localhost"
    created: str = ""  # ISO 8601 UTC
    mkmedia_version: str = ""
    os_pretty_name: str = ""
    kernel_version: str = ""
    backup: str = "NONE"
    backup_url: str = ""
    output: str = "ISO"
    # The id of the rescue medium's marker file /mkmedia/id-<hex> (lower case hex): how the
    # rescue system finds its own CD or USB stick (an iso:// backup on it, the disks recover
    # must leave alone). Empty: a medium without one (older builds).
    medium_id: str = ""
    network: str = "dhcp"  # dhcp | saved | none
    saved_interfaces: list[SavedInterface] = field(default_factory=list)
    nameservers: list[str] = field(default_factory=list)
    modules_load: list[str] = field(default_factory=list)
    ssh_authorized_keys: list[str] = field(default_factory=list)
    ssh_root_password_hash: str = ""
    unattended_action: str = "reboot"  # reboot | poweroff | shell
    settings: dict[str, object] = field(default_factory=dict)  # the build's merged settings

    def to_json(self) -> str:
        document = {"format_version": FORMAT_VERSION, **asdict(self)}
        return json.dumps(document, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> RescueConfig:
        data = json.loads(text)
        data.pop("format_version", None)
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["saved_interfaces"] = [
            SavedInterface(**i) for i in values.get("saved_interfaces", [])
        ]
        return cls(**values)


def load(path: Path = RESCUE_CONF) -> RescueConfig:
    """The rescue configuration, or defaults when the file is missing (a bare test tree)."""
    try:
        return RescueConfig.from_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return RescueConfig()
    except (
        OSError,
        ValueError,
        TypeError,
        AttributeError,
    ) as exc:  # unreadable, not JSON, bad keys
        raise ConfigError(
            f"The rescue configuration {path} cannot be used: {exc}.",
            hint="mkmedia build writes it; build the rescue media again, or undo the update "
            "that replaced it.",
        ) from exc
