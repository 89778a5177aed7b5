"""Value checks that run with the configuration, before anything is built.

Each check stops with one paragraph naming the setting, its value, the layer it came from and
what to do, so a bad value never costs a whole rescue tree build before the step that uses it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from mkmedia.emit import cdrom, destination, labels
from mkmedia.emit.menutext import control_character, grub_special
from mkmedia.initrd.compress import DEFAULT_LEVELS, LEVEL_RANGES
from mkmedia.recipe import Origin
from rescue_runtime.errors import ConfigError, MissingError

# ISOLINUX counts its TIMEOUT in tenths of a second and stops at 35996 (about an hour).
ISOLINUX_MAX_TENTHS = 35996
MAX_BOOT_TIMEOUT = ISOLINUX_MAX_TENTHS // 10
Where = Callable[[str], str]


def check_compression_level(values: Mapping[str, object], where: Where) -> None:
    """One range table (the pack step's) decides, before the tree is built."""
    level = values["COMPRESSION_LEVEL"]
    method = str(values["COMPRESSION"])
    if not isinstance(level, int) or level == 0:
        return
    if method not in LEVEL_RANGES:
        raise ConfigError(
            f"COMPRESSION_LEVEL is {level} (from {where('COMPRESSION_LEVEL')}) but COMPRESSION "
            f"is {method} (from {where('COMPRESSION')}), which has no levels.",
            hint="Set COMPRESSION_LEVEL to 0, or choose a compression with levels "
            f"({', '.join(LEVEL_RANGES)}).",
        )
    low, high = LEVEL_RANGES[method]
    if not low <= level <= high:
        raise ConfigError(
            f"COMPRESSION_LEVEL {level} (from {where('COMPRESSION_LEVEL')}) is out of range "
            f"for {method} compression (from {where('COMPRESSION')}).",
            hint=f"Use 0 (the tuned default, {DEFAULT_LEVELS[method]}) or a level from {low} "
            f"to {high}.",
        )


def check_boot_timeout(values: Mapping[str, object], where: Where) -> None:
    timeout = values["BOOT_TIMEOUT"]
    if isinstance(timeout, int) and not 0 <= timeout <= MAX_BOOT_TIMEOUT:
        raise ConfigError(
            f"BOOT_TIMEOUT {timeout} (from {where('BOOT_TIMEOUT')}) is out of range.",
            hint=f"Give the seconds the boot menu waits, from 0 (boot the default at once) to "
            f"{MAX_BOOT_TIMEOUT} (ISOLINUX counts at most {ISOLINUX_MAX_TENTHS} tenths).",
        )


def check_iso_volid(values: Mapping[str, object], where: Where) -> None:
    label = str(values["ISO_VOLID"])
    if not label:
        return  # derived from the host name, always usable
    problem = labels.label_problem(label)
    if problem is not None:
        raise ConfigError(
            f"ISO_VOLID {label!r} (from {where('ISO_VOLID')}) cannot be the ISO volume "
            f"label: {problem}.",
            hint=f"Set ISO_VOLID to 1 to {labels.ISO9660_MAX} characters A-Z, 0-9 or '_' (for "
            f"example {labels.suggestion(label)}); the {labels.JOLIET_MAX}-character Joliet "
            f"and {labels.FAT_MAX}-character EFI labels are derived from it. Leave it empty "
            "for RESCUE_<HOST>.",
        )


def check_output_prefix(values: Mapping[str, object], where: Where) -> None:
    """OUTPUT_PREFIX is one visible path component below OUTPUT_URL."""
    prefix = str(values["OUTPUT_PREFIX"])
    parts = prefix.split("/")
    if not prefix:
        problem = "is empty (the ISO would be a hidden file named .iso)"
    elif prefix in (".", ".."):
        problem = "names a directory, not a file-name prefix"
    elif prefix.startswith("/"):
        problem = "is an absolute path (it would ignore OUTPUT_URL)"
    elif ".." in parts:
        problem = "climbs out of OUTPUT_URL with '..'"
    elif len(parts) > 1:
        problem = "is more than one path component (media and manifest would part ways)"
    elif prefix.startswith("."):
        problem = "starts with a dot (the media would be hidden files)"
    elif control_character(prefix):
        problem = f"holds the control character {control_character(prefix)}"
    else:
        return
    raise ConfigError(
        f"OUTPUT_PREFIX {prefix!r} (from {where('OUTPUT_PREFIX')}) {problem}.",
        hint="Set OUTPUT_PREFIX to a plain name without '/' that does not start with a dot "
        "(the default is the host name); the directory goes into OUTPUT_URL.",
    )


def _not_a_directory(path: Path) -> Path | None:
    """The first existing component of `path` that is not a directory, if any."""
    for candidate in [*reversed(path.parents), path]:
        if candidate.exists() and not candidate.is_dir():
            return candidate
        if not candidate.exists():
            return None
    return None


def check_output_url(values: Mapping[str, object], where: Where) -> None:
    url = str(values["OUTPUT_URL"])
    if not url:
        raise ConfigError(
            f"OUTPUT_URL is empty (from {where('OUTPUT_URL')}).",
            hint=f"Set it to file:///directory, or leave it out for "
            f"file://{destination.DEFAULT_OUTPUT_DIR}.",
        )
    try:
        directory = destination.output_dir(url)
    except ConfigError as exc:
        raise ConfigError(
            f"{exc.message} (OUTPUT_URL is set in {where('OUTPUT_URL')}.)", hint=exc.hint
        ) from None
    blocking = _not_a_directory(directory / str(values["OUTPUT_PREFIX"]))
    if blocking is not None:
        raise ConfigError(
            f"OUTPUT_URL {url!r} (from {where('OUTPUT_URL')}) cannot hold the media: {blocking} "
            "exists and is not a directory.",
            hint="Point OUTPUT_URL at a directory (it is created when missing), or move that "
            "file away.",
        )


def check_command_line(values: Mapping[str, object], where: Where) -> None:
    """KERNEL_CMDLINE and CONSOLES go verbatim into grub.cfg and isolinux.cfg lines."""
    cmdline = str(values["KERNEL_CMDLINE"])
    items: list[tuple[str, str]] = [("KERNEL_CMDLINE", cmdline)]
    consoles = values["CONSOLES"]
    assert isinstance(consoles, list)
    items += [("CONSOLES", str(console)) for console in consoles]
    for name, text in items:
        control = control_character(text)
        if control:
            raise ConfigError(
                f"{name} {text!r} (from {where(name)}) holds the control character {control}: "
                "in the boot menus it would start a line of its own.",
                hint="Write the value on one line; in YAML a folded (>) or literal (|) block "
                "ends in a newline, so use a plain scalar or `>-`.",
            )
        special = grub_special(text)
        if special:
            raise ConfigError(
                f"{name} {text!r} (from {where(name)}) holds {special}, which GRUB's menu "
                "parser would act on instead of passing it to the kernel.",
                hint="Remove those characters (kernel options do not need them); a value "
                'with spaces may be written in double quotes: option="a b".',
            )
        if name == "CONSOLES" and (not text or any(char.isspace() for char in text)):
            raise ConfigError(
                f"CONSOLES item {text!r} (from {where(name)}) is not one console.",
                hint="Give one console per item, such as tty0 or ttyS0,115200.",
            )


def check_host_name(host: str) -> None:
    """The host name is written into the boot menus' titles and labels."""
    control = control_character(host)
    if control:
        raise ConfigError(
            f"The host name {host!r} holds the control character {control}, which would break "
            "the boot menus that name it.",
            hint="Give the machine a proper host name (hostnamectl set-hostname NAME).",
        )


def _same_device(one: str, other: str) -> bool:
    return os.path.realpath(one) == os.path.realpath(other)


def check_cdrom_device(values: Mapping[str, object], where: Where) -> None:
    """OUTPUT=CDROM: the drive must be one xorriso can write to, found before the build."""
    if values["OUTPUT"] != "CDROM":
        return
    device = str(values["CDROM_DEVICE"])
    writers = cdrom.optical_writers()
    if not device:
        if writers:
            return
        raise MissingError(
            f"OUTPUT is CDROM (from {where('OUTPUT')}) but this machine has no writable optical "
            "drive (xorriso -devices lists none).",
            hint="Connect a CD/DVD writer, set CDROM_DEVICE, or use OUTPUT=ISO.",
        )
    if any(_same_device(device, writer) for writer in writers):
        return
    state = "does not exist" if not os.path.exists(device) else "is not a writable optical drive"
    listed = ", ".join(writers) or "none"
    raise ConfigError(
        f"CDROM_DEVICE {device!r} (from {where('CDROM_DEVICE')}) {state} (xorriso -devices "
        f"lists as writers: {listed}).",
        hint="Name a drive that `xorriso -devices` lists with rw permissions, leave "
        "CDROM_DEVICE empty for the first one, or use OUTPUT=ISO.",
    )


def check_values(
    values: Mapping[str, object], origins: Mapping[str, Sequence[Origin]], *, host: str
) -> None:
    """Every pre-build value check, in the order a user would fix them."""

    def where(name: str) -> str:
        return ", ".join(o.where() for o in origins.get(name, [])) or "built-in defaults"

    check_compression_level(values, where)
    check_boot_timeout(values, where)
    check_iso_volid(values, where)
    check_output_prefix(values, where)
    check_output_url(values, where)
    check_command_line(values, where)
    check_host_name(host)
    check_cdrom_device(values, where)
