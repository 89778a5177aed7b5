"""The per-client configuration file names PXELINUX (and GRUB's network boot) look for.

PXELINUX asks the TFTP server for pxelinux.cfg/01-aa-bb-cc-dd-ee-ff (ARP type 1, the MAC in
lower case with dashes), then the client's IPv4 address in upper-case hex (C0A80005), then
that name shortened one digit at a time, then `default`. GRUB 2.06 does the same below its
prefix with grub.cfg-01-aa-bb-... and grub.cfg-C0A80005.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from rescue_runtime.errors import ConfigError

_MAC = re.compile(r"^[0-9a-f]{2}([:-])[0-9a-f]{2}(?:\1[0-9a-f]{2}){4}$", re.IGNORECASE)
ARP_ETHERNET = "01"


def is_mac(text: str) -> bool:
    return bool(_MAC.match(text.strip()))


def mac_config_name(mac: str) -> str:
    """01-aa-bb-cc-dd-ee-ff for an Ethernet MAC written with ':' or '-'."""
    text = mac.strip()
    if not is_mac(text):
        raise ConfigError(
            f"{mac!r} is not an Ethernet MAC address (six two-digit hex bytes).",
            hint="Write it as aa:bb:cc:dd:ee:ff.",
        )
    return f"{ARP_ETHERNET}-{text.lower().replace(':', '-')}"


def ip_config_name(address: str) -> str:
    """The IPv4 address (a CIDR suffix is ignored) as eight upper-case hex digits."""
    try:
        ip = ipaddress.ip_interface(address.strip()).ip
    except ValueError as exc:
        raise ConfigError(
            f"{address!r} is neither a MAC address nor an IPv4 address.",
            hint="Name PXE clients by MAC (aa:bb:cc:dd:ee:ff) or IPv4 address (192.0.2.5).",
        ) from exc
    if ip.version != 4:
        raise ConfigError(
            f"{address!r} is an IPv6 address; PXELINUX names its files by IPv4 address only.",
            hint="Name the client by its MAC address instead.",
        )
    return f"{int(ip):08X}"


def client_config_names(clients: Iterable[str]) -> list[str]:
    """The file names for a list of MAC and IPv4 addresses: sorted, each once."""
    names = {mac_config_name(c) if is_mac(c) else ip_config_name(c) for c in clients if c.strip()}
    return sorted(names)
