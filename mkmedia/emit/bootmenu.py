"""The boot menu, as data: one list of entries rendered by every boot loader template.

ISO, USB and PXE menus all come from `ENTRIES`, so each entry means the same thing on every
medium. An entry that needs a rescue feature this version lacks (`rescue_runtime.features`) is
neither shown nor accepted as BOOT_DEFAULT; it comes back when that feature is made real.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import jinja2

from mkmedia.emit.menutext import control_character, grub_special
from mkmedia.host.paths import bootloaders_dir, missing_data
from rescue_runtime import features
from rescue_runtime.errors import ConfigError

DEFAULT_CONSOLES = ("tty0", "ttyS0,115200")
# Extra entries for a serial console that the configured consoles do not cover (many servers
# put their BMC's serial-over-LAN on the second port).
DEFAULT_SERIAL_VARIANTS = ("ttyS0,115200", "ttyS1,115200")

_SERIAL = re.compile(r"^ttyS(\d+)(?:,(\d+))?")


@dataclass(frozen=True)
class EntryKind:
    """One kind of menu entry; its id is also the BOOT_DEFAULT value that picks it."""

    id: str
    label: str  # "{host}" is the host name
    kind: str  # "linux" (kernel + initrd) or "local" (hand over to the first local disk)
    options: str = ""  # kernel options of the rescue system that this entry adds
    serial_variants: bool = False  # also offered for the serial consoles not configured
    needs: features.Feature | None = None  # shown only when this rescue feature is ready

    @property
    def ready(self) -> bool:
        return self.needs is None or self.needs.ready


# The menu, in its order. While recover is a stub, the entry that boots the rescue system is
# named for what it does; the recover issue renames it and its "unattended" row comes back.
ENTRIES: tuple[EntryKind, ...] = (
    EntryKind("rescue", "Rescue system for {host}", "linux", serial_variants=True),
    EntryKind(
        "unattended",
        "Automatic recover {host}",
        "linux",
        options="unattended",
        serial_variants=True,
        needs=features.RECOVER,
    ),
    EntryKind("local", "Boot from the first local disk", "local"),
)
BOOT_DEFAULTS = tuple(entry.id for entry in ENTRIES)


def available_defaults() -> tuple[str, ...]:
    """The BOOT_DEFAULT values this version offers (the entries it shows)."""
    return tuple(entry.id for entry in ENTRIES if entry.ready)


def why_not(boot_default: str) -> str:
    """Why a BOOT_DEFAULT value is refused, as the end of a sentence."""
    for entry in ENTRIES:
        if entry.id == boot_default and entry.needs is not None and not entry.needs.ready:
            return f"needs mkmedia {entry.needs.name}, which is not implemented in this version yet"
    return f"is not one of {', '.join(available_defaults())}"


@dataclass(frozen=True)
class MenuEntry:
    id: str  # stable identifier: local, rescue, rescue-ttyS1, ...
    label: str
    kind: str  # "linux" (kernel + initrd) or "local" (hand over to the first local disk)
    cmdline: str = ""


@dataclass(frozen=True)
class SerialPort:
    unit: int
    speed: int


@dataclass(frozen=True)
class BootMenu:
    title: str
    entries: tuple[MenuEntry, ...]
    default: str
    timeout: int  # seconds; 0 boots the default at once
    serial: SerialPort | None  # where the boot loader itself talks, besides the screen

    def entry(self, entry_id: str) -> MenuEntry:
        for entry in self.entries:
            if entry.id == entry_id:
                return entry
        raise KeyError(entry_id)


def serial_port(consoles: Sequence[str]) -> SerialPort | None:
    """The first serial console in a console= list (the boot loader mirrors its menu there)."""
    for console in consoles:
        match = _SERIAL.match(console)
        if match:
            return SerialPort(int(match.group(1)), int(match.group(2) or 9600))
    return None


def _console_args(consoles: Sequence[str]) -> str:
    # The last console= becomes /dev/console, where the rescue shell runs.
    return " ".join(f"console={console}" for console in consoles)


def _join(*parts: str) -> str:
    return " ".join(part for part in parts if part.strip())


def _entry(kind: EntryKind, host: str, args: str, serial: str = "") -> MenuEntry:
    label = kind.label.format(host=host)
    if kind.kind == "local":
        return MenuEntry(kind.id, label, kind.kind)
    entry_id = f"{kind.id}-{serial}" if serial else kind.id
    if serial:
        label += f" (serial console {serial})"
    return MenuEntry(entry_id, label, kind.kind, _join(args, kind.options))


def build_menu(
    *,
    host: str,
    kernel_cmdline: str,
    consoles: Sequence[str] = DEFAULT_CONSOLES,
    boot_default: str = "local",
    boot_timeout: int = 30,
    serial_variants: Sequence[str] = DEFAULT_SERIAL_VARIANTS,
) -> BootMenu:
    if boot_default not in available_defaults():
        raise ConfigError(
            f"BOOT_DEFAULT is {boot_default!r}, which {why_not(boot_default)}.",
            hint=f"Set BOOT_DEFAULT to one of {', '.join(available_defaults())} "
            "(local is the safe choice).",
        )
    if boot_timeout < 0:
        raise ConfigError(
            f"BOOT_TIMEOUT is {boot_timeout}, but it must be a number of seconds (0 or more).",
            hint="Set BOOT_TIMEOUT to the seconds the boot menu waits before its default entry.",
        )
    # The configuration checks report these with the setting's origin; this guards callers.
    # The host name only appears in quoted menu labels (GRUB's quotes are stripped from it).
    texts = [("host name", host, False), ("kernel command line", kernel_cmdline, True)]
    texts += [("console", console, True) for console in consoles]
    for what, text, on_linux_line in texts:
        if control_character(text) or (on_linux_line and grub_special(text)):
            raise ConfigError(
                f"The boot menu's {what} {text!r} would break the boot loader configurations.",
                hint="Remove control characters (and GRUB's $ ; & | < > { } \\ ' ` from "
                "kernel options).",
            )
    if not consoles:
        raise ConfigError(
            "The console list is empty, so the rescue system would have no console.",
            hint="Configure at least one console, e.g. tty0 and ttyS0,115200.",
        )
    shown = [entry for entry in ENTRIES if entry.ready]
    base = _join(kernel_cmdline, _console_args(consoles))
    entries = [_entry(kind, host, base) for kind in shown]
    # Serial variants: the screen plus a serial port the configured consoles do not name.
    configured = {console.split(",")[0] for console in consoles}
    screens = [console for console in consoles if not _SERIAL.match(console)]
    for variant in serial_variants:
        device = variant.split(",")[0]
        if device in configured:
            continue
        args = _join(kernel_cmdline, _console_args([*screens, variant]))
        for kind in shown:
            if kind.serial_variants:
                entries.append(_entry(kind, host, args, device))
    return BootMenu(
        title=f"mkmedia rescue system for {host}",
        entries=tuple(entries),
        default=boot_default,
        timeout=boot_timeout,
        serial=serial_port(consoles),
    )


@functools.cache
def _environment(template_dir: Path) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(template_dir),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,  # boot loader configs, not HTML
    )


def render(template: str, **context: object) -> str:
    """Render one template from bootloaders/ (StrictUndefined: a missing value is an error)."""
    template_dir = bootloaders_dir()
    try:
        loaded = _environment(template_dir).get_template(template)
    except jinja2.TemplateNotFound as exc:
        raise missing_data("boot loader template", template_dir / template) from exc
    return loaded.render(**context)
