"""usb:// backup locations: the data partition of a stick made by `mkmedia format`.

`usb:///dev/disk/by-label/MKMEDIA-000` (ReaR's form, with mkmedia's label) finds the partition
by its label: through udev's /dev/disk/by-label link, or, where udev made none (a container, a
system without udev rules), by asking blkid, which reads every block device. Exactly one
device must carry the label. A device path (`usb:///dev/sdb3`) names the partition itself.
Either way the partition must be ext4 labelled MKMEDIA-000 and carry the stick's format
record (/mkmedia/format.json) before anything is written; the backups go under
<partition>/backup/<hostname>/, beside the stick's boot menu and rescue images.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from rescue_runtime.errors import ConfigError, MissingError
from rescue_runtime.run import run, which
from rescue_runtime.url import Url

# The data partition `mkmedia format` makes (mkmedia/usb/ imports these names).
DATA_LABEL = "MKMEDIA-000"
DATA_FSTYPE = "ext4"
FORMAT_RECORD = "mkmedia/format.json"
BACKUP_DIR = "backup"
BY_LABEL = "/dev/disk/by-label/"
DEFAULT_URL = f"usb://{BY_LABEL}{DATA_LABEL}"
# What reading a stick takes: the USB host controllers, mass storage, disks, the file system.
MODULES = (
    "usb_storage", "uas", "sd_mod", "xhci_pci", "xhci_hcd", "ehci_pci", "ehci_hcd",
    "ohci_pci", "uhci_hcd", "ext4",
)  # fmt: skip
PROGRAMS = ("blkid",)


def check_url(url: Url) -> None:
    if url.host not in ("", "localhost"):
        raise ConfigError(
            f"BACKUP_URL={url.text!r} names the host {url.host!r}; a usb:// URL names the "
            "stick's data partition on this machine.",
            hint=f"Write it as {DEFAULT_URL}.",
        )
    if not url.path.startswith("/dev/") or url.path.endswith("/"):
        raise ConfigError(
            f"BACKUP_URL={url.text!r} does not name a device: a usb:// URL names the data "
            "partition of a stick made by `mkmedia format`.",
            hint=f"Write it as {DEFAULT_URL} (or usb:///dev/sdX3 for one partition).",
        )
    if url.path.startswith(BY_LABEL) and url.path[len(BY_LABEL) :] != DATA_LABEL:
        raise ConfigError(
            f"BACKUP_URL={url.text!r} names the label {url.path[len(BY_LABEL) :]!r}; the data "
            f"partition `mkmedia format` makes is labelled {DATA_LABEL}.",
            hint=f"Write it as {DEFAULT_URL}.",
        )


def _settle() -> None:
    """Let udev finish with a just-plugged stick (its driver, its /dev/disk links); best
    effort: a container has no udev."""
    if which("udevadm"):
        run(["udevadm", "settle", "--timeout=10"], check=False)


def by_label(label: str) -> list[str]:
    """Every device whose file system carries `label` (blkid without its cache: a stale
    cache names sticks long gone)."""
    result = run(
        ["blkid", "-c", "/dev/null", "-o", "device", "-t", f"LABEL={label}"],
        ok_codes=(0, 2),  # 2: none found
        what=f"looking for the file system labelled {label}",
    )
    return sorted({line.strip() for line in result.stdout.splitlines() if line.strip()})


def find_device(url: Url) -> str:
    """The partition `url` names, one device node."""
    check_url(url)
    if not os.path.exists(url.path):
        _settle()
    if os.path.exists(url.path):
        return os.path.realpath(url.path)
    if not url.path.startswith(BY_LABEL):
        raise MissingError(
            f"BACKUP_URL={url.text!r}: there is no device {url.path}.",
            hint="Plug in the backup stick (lsblk lists the devices), or correct BACKUP_URL.",
        )
    found = by_label(DATA_LABEL)
    if not found:
        raise MissingError(
            f"BACKUP_URL={url.text!r}: no file system is labelled {DATA_LABEL}, so the backup "
            "stick is not here.",
            hint="Plug in the stick made with `mkmedia format` (or make one), and run the "
            "command again.",
        )
    if len(found) > 1:
        raise ConfigError(
            f"BACKUP_URL={url.text!r}: {len(found)} file systems are labelled {DATA_LABEL} "
            f"({', '.join(found)}), so which stick holds the backup is not clear.",
            hint="Unplug all but one, or name the partition: BACKUP_URL=usb:///dev/sdX3.",
        )
    return found[0]


def _probe(device: str, tag: str) -> str:
    result = run(["blkid", "-c", "/dev/null", "-o", "value", "-s", tag, device], check=False)
    return result.stdout.strip() if result.ok else ""


def check_partition(url: Url, device: str) -> None:
    """ext4 labelled MKMEDIA-000: checked before the partition is mounted."""
    label, fstype = _probe(device, "LABEL"), _probe(device, "TYPE")
    if (label, fstype) != (DATA_LABEL, DATA_FSTYPE):
        raise ConfigError(
            f"BACKUP_URL={url.text!r}: {device} is not the data partition of a stick made by "
            f"`mkmedia format` (it has label {label or 'none'!r} and file system "
            f"{fstype or 'none'}; the data partition is {DATA_FSTYPE} labelled {DATA_LABEL}).",
            hint="Name the stick's third partition, or make the stick with `mkmedia format`.",
        )


@contextlib.contextmanager
def mounted(url: Url, mountpoint: Path, *, options: str = "") -> Iterator[Path]:
    """<mountpoint>/backup of the stick's data partition, mounted while the context lasts."""
    device = find_device(url)
    check_partition(url, device)
    argv: list[str | os.PathLike[str]] = ["mount", "-t", DATA_FSTYPE]
    if options:
        argv += ["-o", options]
    run([*argv, device, mountpoint], what=f"mounting {device} ({url})")
    try:
        if not (mountpoint / FORMAT_RECORD).is_file():
            raise ConfigError(
                f"BACKUP_URL={url.text!r}: {device} is labelled {DATA_LABEL} but carries no "
                f"/{FORMAT_RECORD}, so it was not made by `mkmedia format`; nothing was written.",
                hint="Make the stick with `mkmedia format`, or name the right partition.",
            )
        backups = mountpoint / BACKUP_DIR
        backups.mkdir(exist_ok=True)
        yield backups
    finally:
        run(["umount", mountpoint], check=False)
