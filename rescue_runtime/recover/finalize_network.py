"""Finalize, network cards: when the source's MAC addresses are gone, the restored system's
configuration follows the new cards.

The saved interfaces (rescue.json: name, MAC, driver, as the build host had them) are placed
on the interfaces present: the operator's mapping file first (/etc/mkmedia/mappings/mac,
"OLD-MAC NEW-MAC" per line, NEW-MAC `-` leaves one as it is), an interface whose MAC is still
here stays, then the one gone interface takes the one new one, then among the interfaces of
one driver, in name order, when as many are gone as are new. Anything else is a guess: verify
asks (interactive) or stops before any write (unattended), like the disk mapping.

Rewritten in the restored system, each line reported (section `network`): systemd-networkd
`MACAddress=`/`PermanentMACAddress=` (.link, .network, .netdev), udev's persistent-net rules
(`ATTR{address}==`), NetworkManager's `mac-address=` and ifupdown's `hwaddress`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from rescue_runtime.atomic import write_text
from rescue_runtime.errors import ConfigError, MissingError
from rescue_runtime.recover import report
from rescue_runtime.recover.mapping import mapping_lines
from rescue_runtime.rescueconf import SavedInterface

SYS_NET = Path("/sys/class/net")
MAC_MAPPING_FILE = Path("/etc/mkmedia/mappings/mac")
MAC = re.compile(r"(?<![0-9A-Fa-f:-])(?:[0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}(?![0-9A-Fa-f:-])")
LEAVE = "-"
# The lines that name a card by its MAC, per kind of file (globs relative to the target).
NETWORKD = re.compile(r"^\s*(MACAddress|PermanentMACAddress)\s*=")
FILES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("etc/systemd/network/*.link", NETWORKD),
    ("etc/systemd/network/*.network", NETWORKD),
    ("etc/systemd/network/*.netdev", NETWORKD),
    ("etc/udev/rules.d/*persistent-net*.rules", re.compile(r"ATTRS?\{address\}\s*==")),
    ("etc/NetworkManager/system-connections/*", re.compile(r"^\s*mac-address\s*=")),
    ("etc/network/interfaces", re.compile(r"^\s*hwaddress\b")),
    ("etc/network/interfaces.d/*", re.compile(r"^\s*hwaddress\b")),
)


def norm(mac: str) -> str:
    return mac.lower().replace("-", ":")


@dataclass(frozen=True)
class Nic:
    name: str
    mac: str  # lower case, colons
    driver: str = ""


def present_nics(sys_net: Path = SYS_NET) -> list[Nic]:
    """This machine's interfaces backed by a device (no loopback, bridges or tunnels)."""
    found = []
    for entry in sorted(sys_net.iterdir()) if sys_net.is_dir() else []:
        if not (entry / "device").exists():
            continue
        try:
            mac = norm((entry / "address").read_text().strip())
        except OSError:
            continue
        driver_link = entry / "device" / "driver"
        driver = os.path.basename(os.readlink(driver_link)) if driver_link.is_symlink() else ""
        found.append(Nic(entry.name, mac, driver))
    return found


def saved_nics(saved: Iterable[SavedInterface]) -> list[Nic]:
    return [Nic(s.name, norm(s.mac), s.driver) for s in saved if s.mac]


def read_mac_mapping(path: Path | None = None) -> dict[str, str]:
    """The operator's MAC mapping (MAC_MAPPING_FILE); {} when there is no file."""
    path = path or MAC_MAPPING_FILE
    pairs: dict[str, str] = {}
    for number, raw, words in mapping_lines(path):
        ok = (
            len(words) == 2
            and MAC.fullmatch(words[0])
            and (words[1] == LEAVE or MAC.fullmatch(words[1]))
        )
        if not ok:
            raise ConfigError(
                f"{path} line {number}: {raw.strip()!r} is not 'OLD-MAC NEW-MAC'.",
                hint="Write the saved card's MAC and the MAC of the card that replaces it "
                "(or - to leave it as it is), e.g. '52:54:00:12:34:56 52:54:00:ab:cd:ef'.",
            )
        old, new = norm(words[0]), words[1] if words[1] == LEAVE else norm(words[1])
        if old in pairs or (new != LEAVE and new in pairs.values()):
            raise ConfigError(
                f"{path} line {number}: {old if old in pairs else new} is mapped twice.",
                hint="Map each saved card to one present card.",
            )
        pairs[old] = new
    return pairs


@dataclass
class NicMapping:
    pairs: dict[str, str] = field(default_factory=dict)  # old MAC -> new MAC (changed only)
    reasons: dict[str, str] = field(default_factory=dict)
    ambiguous: dict[str, list[str]] = field(default_factory=dict)  # old MAC -> candidates
    unplaced: list[str] = field(default_factory=list)  # gone, and no card is free


def propose_nics(
    saved: list[Nic], present: list[Nic], given: Mapping[str, str] | None = None
) -> NicMapping:
    """Place each saved card whose MAC is gone by the rules in the module's docstring."""
    result = NicMapping()
    here = {n.mac: n for n in present}
    free = {n.mac: n for n in present if n.mac not in {s.mac for s in saved}}
    gone: list[Nic] = []
    for old in saved:
        new = (given or {}).get(old.mac)
        if new == LEAVE or (new is None and old.mac in here):
            continue
        if new is not None:
            if new not in here:
                raise ConfigError(
                    f"{MAC_MAPPING_FILE} maps {old.mac} to {new}, which no card here has.",
                    hint="Write a MAC of `ip link` here, or - to leave the old one.",
                )
            result.pairs[old.mac], result.reasons[old.mac] = new, "the mapping file"
            free.pop(new, None)
            continue
        gone.append(old)
    if len(gone) == 1 and len(free) == 1:
        new_nic = next(iter(free.values()))
        result.pairs[gone[0].mac] = new_nic.mac
        result.reasons[gone[0].mac] = f"the one new card ({new_nic.name})"
        return result
    for driver in sorted({n.driver for n in gone if n.driver}):
        olds = sorted((n for n in gone if n.driver == driver), key=lambda n: n.name)
        news = sorted((n for n in free.values() if n.driver == driver), key=lambda n: n.name)
        if len(olds) == len(news):
            for old, new_nic in zip(olds, news, strict=True):
                result.pairs[old.mac] = new_nic.mac
                result.reasons[old.mac] = f"driver {driver}, in name order ({new_nic.name})"
                free.pop(new_nic.mac)
    for old in gone:
        if old.mac not in result.pairs:
            if free:
                result.ambiguous[old.mac] = sorted(free)
            else:
                result.unplaced.append(old.mac)
    return result


def nic_table(saved: list[Nic], present: list[Nic], mapping: NicMapping) -> str:
    lines = ["saved card (name, driver) -> placed on / candidates"]
    for old in saved:
        if old.mac in mapping.pairs:
            where = f"{mapping.pairs[old.mac]} ({mapping.reasons[old.mac]})"
        elif old.mac in mapping.ambiguous:
            where = "one of " + ", ".join(mapping.ambiguous[old.mac])
        elif old.mac in mapping.unplaced:
            where = "no free card: left as it is"
        else:
            where = "still here"
        lines.append(f"  {old.mac} ({old.name}, {old.driver or 'driver unknown'}) -> {where}")
    lines.append("present cards:")
    lines += [f"  {n.mac} ({n.name}, {n.driver or 'driver unknown'})" for n in present]
    return "\n".join(lines)


Ask = Callable[[str, str], str]


def resolve_nics(
    saved: list[Nic], present: list[Nic], given: Mapping[str, str], ask: Ask | None
) -> NicMapping:
    """The card mapping, asking for each guess (ask=None: unattended, which refuses one
    before anything is written)."""
    mapping = propose_nics(saved, present, given)
    if not mapping.ambiguous:
        return mapping
    table = nic_table(saved, present, mapping)
    if ask is None:
        old, candidates = next(iter(mapping.ambiguous.items()))
        raise MissingError(
            "The saved network cards cannot all be placed on the cards present without a "
            f"guess; nothing was touched.\n{table}",
            hint=f"Write the mapping into {MAC_MAPPING_FILE}, one 'OLD-MAC NEW-MAC' per line "
            f"(e.g. '{old} {candidates[0]}', or '{old} -' to leave it), and run again.",
        )
    print(table, flush=True)
    for old, candidates in list(mapping.ambiguous.items()):
        left = [c for c in candidates if c not in mapping.pairs.values()]
        while True:
            question = f"Which card takes the place of {old} ({', '.join(left)}, or -)?"
            answer = ask(question, LEAVE).strip()
            answer = answer if answer == LEAVE else norm(answer)
            if answer == LEAVE or answer in left:
                break
        del mapping.ambiguous[old]
        if answer != LEAVE:
            mapping.pairs[old], mapping.reasons[old] = answer, "the operator's answer"
    return mapping


# -- the restored system's files --------------------------------------------------------------
def _respell(token: str, new: str) -> str:
    text = new.replace(":", "-") if "-" in token else new
    return text.upper() if token.isupper() else text


def network_files(target: Path) -> list[tuple[Path, re.Pattern[str]]]:
    found = []
    for pattern, key in FILES:
        for path in sorted(target.glob(pattern)):
            if path.is_file() and not path.is_symlink():
                found.append((path, key))
    return found


def rewrite_macs(target: Path, pairs: Mapping[str, str]) -> list[str]:
    """Every line that names an old card's MAC, rewritten (atomically, same mode)."""
    notes = []
    for path, key in network_files(target) if pairs else []:
        lines = path.read_text(errors="surrogateescape").splitlines(keepends=True)
        changed = False
        for i, line in enumerate(lines):
            if not key.search(line):
                continue
            new = MAC.sub(
                lambda m: (
                    _respell(m.group(), pairs[norm(m.group())])
                    if norm(m.group()) in pairs
                    else m.group()
                ),
                line,
            )
            if new != line:
                name = "/" + str(path.relative_to(target))
                text = f"{name}: {line.strip()!r} -> {new.strip()!r}"
                report.note("network", text)
                notes.append(f"rewritten {text}")
                lines[i], changed = new, True
        if changed:
            write_text(path, "".join(lines), mode=path.stat().st_mode & 0o7777)
    return notes


def stale_macs(target: Path, present: Iterable[Nic], pairs: Mapping[str, str]) -> list[str]:
    """Warnings for MACs the restored configuration names that no card here has and that
    nothing maps (a card the saved list did not know)."""
    known = {n.mac for n in present} | set(pairs.values())
    warned: list[str] = []
    for path, key in network_files(target):
        for line in path.read_text(errors="replace").splitlines():
            if key.search(line):
                for match in MAC.finditer(line):
                    mac = norm(match.group())
                    if mac not in known and mac not in pairs and mac not in warned:
                        warned.append(mac)
                        where = path.relative_to(target)
                        report.note("network", f"/{where} names {mac}: no such card, left")
    return [
        f"WARNING: the restored network configuration names {mac}, which no card here has; "
        f"map it in {MAC_MAPPING_FILE} and run `mkmedia finalizeonly` again"
        for mac in warned
    ]


def finalize_network(target: Path, mapping: NicMapping, present: list[Nic]) -> list[str]:
    notes = [
        f"network card {old} is now {new} ({mapping.reasons.get(old, '')})"
        for old, new in mapping.pairs.items()
    ]
    for old, new in mapping.pairs.items():
        report.note("network", f"card {old} -> {new} ({mapping.reasons.get(old, '')})")
    notes += rewrite_macs(target, mapping.pairs)
    notes += stale_macs(target, present, mapping.pairs)
    return notes or ["network cards: no card's MAC is gone; nothing rewritten"]
