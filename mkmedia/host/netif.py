"""This machine's network interfaces: the MAC and IPv4 addresses a PXE server knows it by."""

from __future__ import annotations

import json
import os
from pathlib import Path

from rescue_runtime.rescueconf import SavedInterface
from rescue_runtime.run import run, which

SYS_NET = Path("/sys/class/net")
ARPHRD_ETHER = "1"


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _ipv4_addresses() -> dict[str, list[str]]:
    ip = which("ip")
    if ip is None:
        return {}
    result = run([ip, "-j", "-4", "addr", "show"], check=False, what="listing IPv4 addresses")
    try:
        links = json.loads(result.stdout or "[]")
    except ValueError:
        return {}
    return {
        link.get("ifname", ""): [
            f"{a['local']}/{a['prefixlen']}" for a in link.get("addr_info", []) if "local" in a
        ]
        for link in links
    }


def host_interfaces(sys_net: Path = SYS_NET) -> list[SavedInterface]:
    """The Ethernet interfaces backed by a device (no bridges, veths or tunnels), by name."""
    addresses = _ipv4_addresses() if sys_net == SYS_NET else {}
    found = []
    for entry in sorted(sys_net.iterdir()) if sys_net.is_dir() else []:
        if _read(entry / "type") != ARPHRD_ETHER or not (entry / "device").exists():
            continue
        mac = _read(entry / "address")
        driver = entry / "device" / "driver"
        name = os.path.basename(os.readlink(driver)) if driver.is_symlink() else ""
        if mac and mac != "00:00:00:00:00:00":
            found.append(
                SavedInterface(entry.name, mac, addresses.get(entry.name, []), driver=name)
            )
    return found


def pxe_clients(interfaces: list[SavedInterface]) -> list[str]:
    """Every MAC and IPv4 address of the interfaces (the names a PXE client asks for)."""
    clients = []
    for interface in interfaces:
        clients.append(interface.mac)
        clients += interface.addresses
    return clients
