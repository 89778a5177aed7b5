"""The drivers this host uses now: loaded modules and the drivers behind its disks and NICs.

The rescue media may boot another kernel than the running one, so what is found here is a
list of *names* (module names, device modaliases, file system types) that the module resolver
then looks up in the chosen kernel; names the chosen kernel lacks are reported, not fatal.
Drivers built into the running kernel have no `module` link in sysfs, so each device's
`modalias` is collected as well: it finds the module in the chosen kernel the way udev would.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

# /sys/block/mdX/md/level -> the RAID personality module.
MD_PERSONALITIES = {
    "raid0": "raid0",
    "raid1": "raid1",
    "raid4": "raid456",
    "raid5": "raid456",
    "raid6": "raid456",
    "raid10": "raid10",
    "linear": "linear",
    "multipath": "multipath",
}
# Prefix of /sys/block/dm-N/dm/uuid -> the device-mapper target module it needs.
DM_UUID_TARGETS = {
    "CRYPT-": "dm_crypt",
    "mpath-": "dm_multipath",
    "LVM-": "dm_mod",
    "part": "dm_mod",
}
# Virtual block devices named by their kernel name prefix -> their driver module.
VIRTUAL_BLOCK = {"loop": "loop", "zram": "zram", "nbd": "nbd", "rbd": "rbd", "drbd": "drbd"}
# DEVTYPE in /sys/class/net/X/uevent of virtual interfaces -> their module.
NET_DEVTYPES = {
    "bond": "bonding",
    "bridge": "bridge",
    "vlan": "8021q",
    "team": "team",
    "macvlan": "macvlan",
    "vxlan": "vxlan",
    "wireguard": "wireguard",
}
# File systems that never come from a disk (only types mounted from /dev/... are taken).
_DEVICE_PREFIX = "/dev/"


@dataclass(frozen=True)
class Wanted:
    """A name this host needs and why; `kind` is "module", "modalias" or "fs".

    A "modalias" matching no module is normal (a PCI bridge has no driver); a "module" or
    "fs" missing from the chosen kernel is reported.
    """

    name: str
    kind: str
    why: str


def _link_name(path: Path) -> str | None:
    try:
        return Path(os.readlink(path)).name
    except OSError:
        return None


def _read(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace").strip()
    except OSError:
        return None


def _device_chain(device: Path, sys_root: Path) -> list[Path]:
    """The device and its parents up to (not including) sys_root/devices."""
    try:
        current = device.resolve(strict=True)
    except OSError:
        return []
    stop = (sys_root / "devices").resolve()
    chain: list[Path] = []
    while current != stop and current != current.parent and stop in current.parents:
        chain.append(current)
        current = current.parent
    return chain


def device_drivers(device: Path, sys_root: Path, why: str) -> list[Wanted]:
    """Modules and modaliases of a sysfs device and of every device above it."""
    wanted: list[Wanted] = []
    for dev in _device_chain(device, sys_root):
        module = _link_name(dev / "driver" / "module")
        if module:
            wanted.append(Wanted(module, "module", f"driver of {why} ({dev.name})"))
        modalias = _read(dev / "modalias")
        if modalias:
            wanted.append(Wanted(modalias, "modalias", f"device {dev.name} of {why}"))
    return wanted


def _each_device(
    directory: Path,
    sys_root: Path,
    describe: Callable[[str], str],
    layers: Callable[[Path, str], Iterator[Wanted]],
) -> list[Wanted]:
    """For every entry of a sysfs class directory (sorted by name): the drivers of the device
    behind it, if any, then what `layers(entry, why)` adds; `describe(name)` is the why."""
    wanted: list[Wanted] = []
    if not directory.is_dir():
        return wanted
    for entry in sorted(directory.iterdir()):
        why = describe(entry.name)
        if (entry / "device").exists():
            wanted.extend(device_drivers(entry / "device", sys_root, why))
        wanted.extend(layers(entry, why))
    return wanted


def _block_layers(dev: Path, why: str) -> Iterator[Wanted]:
    """MD RAID, device-mapper and virtual-disk modules a block device needs."""
    level = _read(dev / "md" / "level")
    if level is not None:
        yield Wanted("md_mod", "module", f"MD RAID {why}")
        if level in MD_PERSONALITIES:
            yield Wanted(MD_PERSONALITIES[level], "module", f"{level} of {why}")
    uuid = _read(dev / "dm" / "uuid")
    if uuid is not None:
        yield Wanted("dm_mod", "module", f"device-mapper {why}")
        for prefix, module in DM_UUID_TARGETS.items():
            if uuid.startswith(prefix):
                yield Wanted(module, "module", f"target of {why}")
    for prefix, module in VIRTUAL_BLOCK.items():
        if dev.name.startswith(prefix) and dev.name[len(prefix) :].isdigit():
            yield Wanted(module, "module", f"virtual disk {why}")


def _net_layers(iface: Path, why: str) -> Iterator[Wanted]:
    """The bonding, bridge, VLAN ... module of a virtual interface."""
    for line in (_read(iface / "uevent") or "").splitlines():
        key, _, value = line.partition("=")
        if key == "DEVTYPE" and value in NET_DEVTYPES:
            yield Wanted(NET_DEVTYPES[value], "module", f"{value} {why}")


def block_drivers(sys_root: Path) -> list[Wanted]:
    """The drivers behind every block device, including MD RAID and device-mapper layers."""
    return _each_device(sys_root / "block", sys_root, lambda name: f"/dev/{name}", _block_layers)


def net_drivers(sys_root: Path) -> list[Wanted]:
    """The drivers behind every network interface (and bonding/bridge/VLAN layers)."""
    return _each_device(
        sys_root / "class" / "net",
        sys_root,
        lambda name: f"network interface {name}",
        _net_layers,
    )


def loaded_modules(proc_root: Path) -> list[Wanted]:
    """Modules loaded now (/proc/modules); empty on a kernel without module support."""
    text = _read(proc_root / "modules") or ""
    return [
        Wanted(line.split()[0], "module", "loaded now")
        for line in text.splitlines()
        if line.strip()
    ]


def mounted_filesystems(proc_root: Path) -> list[Wanted]:
    """Types of the file systems mounted from block devices now (/proc/mounts)."""
    text = _read(proc_root / "mounts") or ""
    wanted: list[Wanted] = []
    seen: set[str] = set()
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[0].startswith(_DEVICE_PREFIX) and fields[2] not in seen:
            seen.add(fields[2])
            wanted.append(Wanted(fields[2], "fs", f"{fields[1]} is {fields[2]}"))
    return wanted


def host_drivers(
    sys_root: str | os.PathLike[str] = "/sys", proc_root: str | os.PathLike[str] = "/proc"
) -> list[Wanted]:
    """Everything the `loaded` module policy takes from this host, in a stable order."""
    sys_path, proc_path = Path(sys_root), Path(proc_root)
    return [
        *loaded_modules(proc_path),
        *block_drivers(sys_path),
        *net_drivers(sys_path),
        *mounted_filesystems(proc_path),
    ]
