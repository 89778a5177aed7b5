"""Finalize, LUKS keys: the restored system's crypttab key file replaces the temporary key.

A LUKS volume recreated without a header backup opens only with the random key the recreate
script left in KEY_DIR/<name>.key (RAM). After the restore, the key file that the restored
/etc/crypttab names for the volume is added as a key, so that the machine unlocks itself at
boot as before; an interactive recover also asks for a new passphrase. Only when another
key was added is the temporary one removed: it is never left as the only way in unnoticed.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rescue_runtime.atomic import write_text
from rescue_runtime.layout.model import Layout, LuksDevice
from rescue_runtime.layout.parse.tables import CrypttabEntry, parse_crypttab
from rescue_runtime.recover.activate import ask_passphrase as ask_secret
from rescue_runtime.recover.activate import find_by_uuid
from rescue_runtime.recover.recreate_stack import pbkdf_args
from rescue_runtime.run import run

CRYPTTAB = "etc/crypttab"
# crypttab key "files" that are no key a passphrase slot could hold (plain swap etc.).
RANDOM_KEYS = frozenset({"/dev/random", "/dev/urandom", "/dev/hw_random"})
PASSPHRASE_TRIES = 3

Ask = Callable[[str, str], str]
ReadSecret = Callable[[str], str | None]


@dataclass(frozen=True)
class KeyFile:
    """A crypttab key file with the part of it that is the key."""

    path: str  # absolute, as the restored system sees it
    offset: int | None = None  # keyfile-offset=
    size: int | None = None  # keyfile-size=

    def options(self, *, new: bool) -> list[str]:
        """The cryptsetup options naming the part of the file that is the key: luksAddKey's
        for it as the new key (`new`), open's otherwise."""
        prefix = "--new-keyfile-" if new else "--keyfile-"
        argv = []
        for name, value in (("offset", self.offset), ("size", self.size)):
            if value is not None:
                argv += [prefix + name, str(value)]
        return argv


def crypttab_entry(luks: LuksDevice, entries: list[CrypttabEntry]) -> CrypttabEntry | None:
    """The crypttab line for this volume: by mapping name, else by what it names the device
    by (UUID=, /dev/disk/by-uuid/, the device path)."""
    for entry in entries:
        if entry.name == luks.name:
            return entry
    names = {luks.device}
    if luks.uuid:
        uuid = luks.uuid.lower()
        names |= {f"uuid={uuid}", f"/dev/disk/by-uuid/{uuid}"}
    for entry in entries:
        device = entry.device
        if device.lower().startswith(("uuid=", "/dev/disk/by-uuid/")):
            device = device.lower()
        if device in names:
            return entry
    return None


def _number(options: list[str], name: str) -> int | None:
    for option in options:
        key, sep, value = option.partition("=")
        if key == name and sep and value.isdigit():
            return int(value)
    return None


def key_file_of(entry: CrypttabEntry | None) -> tuple[KeyFile | None, str]:
    """The usable key file of a crypttab line, or None and why there is none (a sentence
    fragment naming the line)."""
    if entry is None:
        return None, "/etc/crypttab has no line for it"
    key = entry.key_file
    if key is None:
        return None, f"its /etc/crypttab line ({entry.name}) names no key file"
    script = next((o for o in entry.options if o.startswith("keyscript=")), None)
    if script:
        return None, f"its /etc/crypttab line hands {key} to {script}, which is no key file"
    if key in RANDOM_KEYS:
        return None, f"its /etc/crypttab line uses a random key ({key})"
    if ":" in key:
        return None, f"its /etc/crypttab key file {key} is on another device"
    if not key.startswith("/"):
        return None, f"its /etc/crypttab key file {key} is not an absolute path"
    offset = _number(entry.options, "keyfile-offset")
    return KeyFile(key, offset, _number(entry.options, "keyfile-size")), ""


def captured_entry(luks: LuksDevice) -> CrypttabEntry | None:
    """The crypttab line the layout captured for this volume (its key file and options)."""
    if luks.key_file is None and not luks.options:
        return None
    return CrypttabEntry(luks.name, luks.device, luks.key_file, list(luks.options))


def luks_key_problems(layout: Layout, crypttab_text: str | None) -> list[str]:
    """Verify's question for an unattended recover, before any write: each LUKS volume that
    gets a temporary key (no header backup) and has no key file in the backup's crypttab
    (`crypttab_text`; None: the crypttab the layout captured stands in) would stay locked at
    boot. One sentence per such volume; [] when every one is fine."""
    entries = parse_crypttab(crypttab_text) if crypttab_text is not None else []
    problems = []
    for luks in layout.luks:
        if luks.header_backup:
            continue
        if crypttab_text is None:
            entry = captured_entry(luks)
            key, why = key_file_of(entry)
            if entry is None:
                why = "the crypttab the layout captured has no line for it"
        else:
            key, why = key_file_of(crypttab_entry(luks, entries))
        if key is not None:
            continue
        problems.append(
            f"The LUKS volume {luks.name} ({luks.device}) has no header backup, so recover "
            f"recreates it with a temporary key, and {why}: unattended, nothing would open it "
            "at boot. Save its header (LUKS_HEADER_BACKUP), add a key file to its crypttab "
            "line, or run recover interactively to give it a new passphrase."
        )
    return problems


def temporary_keys(layout: Layout, key_dir: Path) -> list[tuple[LuksDevice, Path]]:
    """The volumes recreated with a temporary key: its file exists, no header backup."""
    found = []
    for luks in layout.luks:
        key = key_dir / f"{luks.name}.key"
        if not luks.header_backup and key.is_file():
            found.append((luks, key))
    return found


def container(luks: LuksDevice) -> str:
    """The LUKS container's device now (by UUID: an MD array may run under another name)."""
    if luks.uuid:
        return find_by_uuid(luks.uuid, luks.device) or luks.device
    return luks.device


def opens(device: str, key: Path, extra: list[str]) -> bool:
    argv = ["cryptsetup", "open", "--test-passphrase", "--key-file", str(key), *extra, device]
    return run(argv, check=False).ok


def add_key(luks: LuksDevice, device: str, temporary: Path, new: Path, extra: list[str]) -> None:
    run(
        ["cryptsetup", "luksAddKey", "--batch-mode", "--key-file", str(temporary),
         *pbkdf_args(luks), *extra, device, str(new)],
        what=f"adding a key to the LUKS volume {luks.name} on {device}",
    )  # fmt: skip


def new_passphrase(ask: Ask, read_secret: ReadSecret, luks: LuksDevice, needed: bool) -> str:
    """Interactive: offer a new passphrase (default yes when nothing else opens the volume);
    the passphrase itself is read without echo and never goes through `ask`, which logs its
    answers. Typed twice; empty or no answer: none."""
    default = "yes" if needed else "no"
    answer = ask(f"Give the LUKS volume {luks.name} a new passphrase? (yes/no)", default)
    if not answer.lower().startswith("y"):
        return ""
    for _ in range(PASSPHRASE_TRIES):
        first = read_secret(f"New passphrase for {luks.name} (empty: none): ")
        if not first:
            return ""
        if read_secret(f"The same passphrase again for {luks.name}: ") == first:
            return first
    return ""


class LuksKeys:
    """Replace each temporary key by the restored system's key file (and a passphrase)."""

    def __init__(
        self,
        layout: Layout,
        target: Path,
        key_dir: Path,
        ask: Ask | None,
        read_secret: ReadSecret = ask_secret,
    ) -> None:
        self.layout, self.target, self.key_dir, self.ask = layout, target, key_dir, ask
        self.read_secret = read_secret

    def run(self) -> list[str]:
        pending = temporary_keys(self.layout, self.key_dir)
        notes = [
            f"LUKS volume {luks.name}: recreated from its header backup; its original keys open it"
            for luks in self.layout.luks
            if luks.header_backup
        ]
        if not pending:
            return notes
        crypttab = self.target / CRYPTTAB
        entries = parse_crypttab(crypttab.read_text()) if crypttab.is_file() else []
        for luks, temporary in pending:
            entry = crypttab_entry(luks, entries) or captured_entry(luks)
            notes += self.replace(luks, temporary, entry)
        return notes

    def replace(self, luks: LuksDevice, temporary: Path, entry: CrypttabEntry | None) -> list[str]:
        device = container(luks)
        added: list[str] = []
        notes: list[str] = []
        key, why = key_file_of(entry)
        if key is not None:
            inside = self.target / key.path.lstrip("/")
            if not inside.is_file():
                why = f"its key file {key.path} is not in the restored system"
            elif opens(device, inside, key.options(new=False)):
                added.append(f"the key file {key.path} (it opened it already)")
            else:
                add_key(luks, device, temporary, inside, key.options(new=True))
                added.append(f"the key file {key.path} from /etc/crypttab")
        if key is None or why:
            notes.append(f"LUKS volume {luks.name}: no crypttab key file added: {why}")
        if self.ask is not None:
            passphrase = new_passphrase(self.ask, self.read_secret, luks, needed=not added)
            if passphrase:
                self.add_passphrase(luks, device, temporary, passphrase)
                added.append("the new passphrase")
        if not added:
            notes.append(
                f"WARNING: the LUKS volume {luks.name} on {device} still opens ONLY with the "
                f"temporary key {temporary}, which lives in RAM and is gone at the next "
                "reboot. Copy it off this machine now, or add a passphrase with `cryptsetup "
                f"luksAddKey --key-file {temporary} {device}`."
            )
            return notes
        run(
            ["cryptsetup", "luksRemoveKey", "--batch-mode", device, str(temporary)],
            what=f"removing the temporary key of the LUKS volume {luks.name}",
        )
        temporary.unlink()
        notes.append(
            f"LUKS volume {luks.name}: opens with {' and '.join(added)}; temporary key removed"
        )
        return notes

    def add_passphrase(self, luks: LuksDevice, device: str, temporary: Path, text: str) -> None:
        # As a file, read whole: the bytes typed, no newline, as the boot prompt gives them.
        new = self.key_dir / f".{luks.name}.new"
        write_text(new, text, mode=0o600)
        try:
            add_key(luks, device, temporary, new, [])
        finally:
            os.unlink(new)
