"""Finalize, Debian's record of where GRUB lives: debconf's `grub-pc/install_devices`.

Debian's grub-pc package remembers the disks it installs GRUB onto, by their /dev/disk/by-id
names, and every later upgrade of the package reinstalls GRUB there. On a replacement disk
(another serial) or another controller those names are gone: the next upgrade asks which disk
to use, or fails under unattended-upgrades, and GRUB stays at its old version. After GRUB is
installed on the mapped disks, the answer is set to those disks, each by a by-id name udev
gives it now (the kernel name when it has none), in the restored system's debconf database.

Only an answer that names something else is changed, and only in the file debconf itself
keeps (/var/cache/debconf/config.dat, one stanza per question); a system without grub-pc or
without an answer is left as it is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from rescue_runtime.atomic import write_text
from rescue_runtime.recover import report

CONFIG_DAT = "var/cache/debconf/config.dat"
QUESTION = "grub-pc/install_devices"
# by-id schemes that name the disk rather than a namespace or a unit (Debian's installer
# prefers these too); a world wide name is the fallback.
LESS_PREFERRED = ("wwn-", "nvme-eui.", "nvme-uuid.", "nvme-nvme.")


def _stanzas(text: str) -> list[list[str]]:
    """config.dat's stanzas (blank-line separated), each its lines with their newlines."""
    stanzas: list[list[str]] = [[]]
    for line in text.splitlines(keepends=True):
        if line.strip():
            stanzas[-1].append(line)
        elif stanzas[-1]:
            stanzas.append([])
    return [s for s in stanzas if s]


def _field(stanza: list[str], name: str) -> str | None:
    for line in stanza:
        key, sep, value = line.partition(":")
        if sep and key == name:
            return value.strip()
    return None


def install_devices(target: Path) -> list[str] | None:
    """The devices the restored system's grub-pc installs onto; None without an answer."""
    path = target / CONFIG_DAT
    if not path.is_file():
        return None
    for stanza in _stanzas(path.read_text(errors="surrogateescape")):
        if _field(stanza, "Name") == QUESTION:
            value = _field(stanza, "Value")
            return [d.strip() for d in value.split(",") if d.strip()] if value else None
    return None


def disk_name(disk: str, links: Mapping[str, str]) -> str:
    """The name grub-pc should remember `disk` by: a by-id link udev made for it, the
    preferred scheme first, else the kernel name."""
    ids = sorted(link for link, device in links.items() if device == disk and "/by-id/" in link)
    ids = [i for i in ids if "-part" not in i.rsplit("/", 1)[1]]
    ids.sort(key=lambda link: link.rsplit("/", 1)[1].startswith(LESS_PREFERRED))
    return ids[0] if ids else disk


def resolve(name: str, links: Mapping[str, str]) -> str:
    return links.get(name, name)


def set_install_devices(target: Path, value: str) -> None:
    """Replace the answer's Value line (atomically, same mode); marks the question seen, as
    an answer given by the administrator is."""
    path = target / CONFIG_DAT
    text = path.read_text(errors="surrogateescape")
    out = []
    for stanza in _stanzas(text):
        if _field(stanza, "Name") == QUESTION:
            stanza = [f"Value: {value}\n" if line.startswith("Value:") else line for line in stanza]
            flags = _field(stanza, "Flags")
            if flags is None:
                stanza.append("Flags: seen\n")
            elif "seen" not in flags.split():
                stanza = [
                    f"Flags: {flags} seen\n" if line.startswith("Flags:") else line
                    for line in stanza
                ]
        out.append("".join(stanza))
    write_text(path, "\n".join(out) + "\n", mode=path.stat().st_mode & 0o7777)


def follow_grub_disks(target: Path, disks: Sequence[str], links: Mapping[str, str]) -> list[str]:
    """Point grub-pc/install_devices at `disks` (where GRUB was just installed) when it names
    anything else; the notes say what was done and why."""
    stored = install_devices(target)
    if stored is None or not disks:
        return []
    if sorted({resolve(name, links) for name in stored}) == sorted(set(disks)):
        return [f"debconf {QUESTION} names the disks GRUB is on: {', '.join(stored)}"]
    value = ", ".join(disk_name(disk, links) for disk in disks)
    set_install_devices(target, value)
    line = f"/{CONFIG_DAT}: {QUESTION} {', '.join(stored)!r} -> {value!r}"
    report.note("rewrite", line)
    return [f"rewritten {line} (grub-pc's upgrades reinstall GRUB on these disks)"]
