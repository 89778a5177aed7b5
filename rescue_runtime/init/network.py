"""Rescue networking: DHCP on every link with carrier, the host's saved addresses, or ip=."""

from __future__ import annotations

import ipaddress
import logging
import time
from pathlib import Path

from rescue_runtime.rescueconf import SavedInterface
from rescue_runtime.run import run, which

log = logging.getLogger("mkmedia.init")

SYS_NET = Path("/sys/class/net")


def links() -> list[str]:
    """Ethernet-like interfaces (not loopback, not virtual bridges left by udev)."""
    names = []
    for path in sorted(SYS_NET.iterdir()) if SYS_NET.is_dir() else []:
        if path.name == "lo" or not (path / "device").exists():
            continue
        names.append(path.name)
    return names


def mac_of(name: str) -> str:
    try:
        return (SYS_NET / name / "address").read_text().strip().lower()
    except OSError:
        return ""


def has_carrier(name: str, wait: float = 5.0) -> bool:
    end = time.monotonic() + wait
    while True:
        try:
            if (SYS_NET / name / "carrier").read_text().strip() == "1":
                return True
        except OSError:
            pass
        if time.monotonic() >= end:
            return False
        time.sleep(0.2)


def bring_up(name: str) -> None:
    run(["ip", "link", "set", "dev", name, "up"], check=False)


def dhcp(name: str) -> bool:
    """Ask for a DHCP lease on one interface (dhclient tries once, then gives up)."""
    client = which("dhclient")
    if client is None:
        log.warning("no DHCP client in the rescue system; %s stays unconfigured", name)
        return False
    Path("/var/lib/dhcp").mkdir(parents=True, exist_ok=True)
    result = run(
        [
            client,
            "-1",
            "-4",
            "-pf",
            f"/run/dhclient.{name}.pid",
            "-lf",
            f"/var/lib/dhcp/dhclient.{name}.leases",
            name,
        ],
        check=False,
        timeout=90,
    )
    return result.ok


def configure_dhcp() -> list[str]:
    configured = []
    for name in links():
        bring_up(name)
        if not has_carrier(name):
            log.info("%s has no carrier; skipped", name)
            continue
        if dhcp(name):
            configured.append(name)
    return configured


def configure_saved(saved: list[SavedInterface]) -> list[str]:
    """Put the host's saved addresses on the interfaces with the same MAC address."""
    by_mac = {mac_of(name): name for name in links()}
    configured = []
    for interface in saved:
        name = by_mac.get(interface.mac.lower())
        if name is None:
            log.warning(
                "the host's interface %s (MAC %s) is not in this machine; its addresses %s "
                "are not configured. Configure the network by hand (ip addr add ...) "
                "or boot with ip=dhcp.",
                interface.name,
                interface.mac,
                ", ".join(interface.addresses) or "-",
            )
            continue
        bring_up(name)
        if interface.mtu:
            run(["ip", "link", "set", "dev", name, "mtu", str(interface.mtu)], check=False)
        for address in interface.addresses:
            run(["ip", "addr", "add", address, "dev", name], check=False)
        if interface.gateway:
            run(["ip", "route", "replace", "default", "via", interface.gateway], check=False)
        configured.append(name)
    return configured


def configure_ip_option(value: str) -> list[str]:
    """ip=dhcp, or ip=<client>:<server>:<gateway>:<netmask>:<hostname>:<device>:<autoconf>."""
    if value in ("dhcp", "on", "any", "both"):
        return configure_dhcp()
    if value in ("off", "none"):
        return []
    parts = (value.split(":") + [""] * 7)[:7]
    client, _server, gateway, netmask, _host, device, autoconf = parts
    devices = [device] if device else links()[:1]
    if autoconf in ("dhcp", "on", "any"):
        configured = []
        for name in devices:
            bring_up(name)
            if dhcp(name):
                configured.append(name)
        return configured
    if not client or not devices:
        log.warning("ip=%s: no client address or no interface; nothing configured", value)
        return []
    prefix = netmask_to_prefix(netmask) if netmask else 24
    if prefix is None:
        log.warning(
            "ip=%s: the netmask %r is neither a prefix length (0-32) nor a netmask such as "
            "255.255.255.0; nothing configured",
            value,
            netmask,
        )
        return []
    name = devices[0]
    bring_up(name)
    run(["ip", "addr", "add", f"{client}/{prefix}", "dev", name], check=False)
    if gateway:
        run(["ip", "route", "replace", "default", "via", gateway], check=False)
    return [name]


def netmask_to_prefix(netmask: str) -> int | None:
    """A prefix length from "24" or "255.255.255.0"; None when it is neither (a typing error
    on the boot prompt must not stop init's network step with a ValueError)."""
    try:
        return ipaddress.IPv4Network(f"0.0.0.0/{netmask}").prefixlen
    except ValueError:
        return None


def write_resolv_conf(nameservers: list[str]) -> None:
    resolv = Path("/etc/resolv.conf")
    if nameservers and not resolv.exists():
        resolv.write_text("".join(f"nameserver {ns}\n" for ns in nameservers))
