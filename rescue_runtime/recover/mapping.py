"""Disk mapping: which present disk takes the place of each disk of the saved layout.

The rules, in their order (ReaR's disk mapping, made deterministic): the operator's mapping
file first; then the same identity (serial, WWN); then the same path when no other saved disk
claims that disk by identity (verify refuses it when it is too small); then the one disk of
the same size; then the one disk large enough. A disk that holds the rescue medium or the
backup is never a candidate, and no disk takes two places. Whatever stays open is
`ambiguous` (several candidates) or `unplaced` (none): recover stops there, before any
write, with the table of candidates and the line to put into the mapping file.

`apply_mapping` rewrites every device path of the layout (disks, partitions — `vda2` becomes
`nvme0n1p2` —, MD members, PVs, LUKS containers, file systems, mounts, boot loaders) through
one translation table, so no component keeps an old name.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rescue_runtime.errors import ConfigError
from rescue_runtime.layout.model import Disk, Layout
from rescue_runtime.layout.parse import lsblk
from rescue_runtime.layout.parse.lsblk import BlockDevice
from rescue_runtime.layout.serial import from_json, to_json
from rescue_runtime.run import run

MAPPING_FILE = Path("/etc/mkmedia/mappings/disks")
# Device kinds that are never recovery targets (lsblk's TYPE disk covers the rest).
_NOT_TARGETS = re.compile(r"^/dev/(loop|ram|zram|sr|fd|md|dm-|nbd)")


@dataclass
class DiskMapping:
    pairs: dict[str, str] = field(default_factory=dict)  # saved disk path -> present disk path
    reasons: dict[str, str] = field(default_factory=dict)  # saved disk path -> why
    ambiguous: dict[str, list[str]] = field(default_factory=dict)  # saved -> candidates
    unplaced: list[str] = field(default_factory=list)  # saved disks with no candidate

    @property
    def complete(self) -> bool:
        return not self.ambiguous and not self.unplaced

    @property
    def identity(self) -> bool:
        return all(old == new for old, new in self.pairs.items())


def present_disks() -> list[BlockDevice]:
    """The whole disks of this machine (lsblk), without loop, RAM, optical and stacked ones."""
    out = run(["lsblk", "-J", "-b", "-O", "--nodeps"], what="listing the disks").stdout
    return [d for d in lsblk.parse(out) if d.type == "disk" and not _NOT_TARGETS.match(d.path)]


def mapping_lines(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line number, line, its words) of each line of an operator's mapping file that is
    not blank or a `#` comment; none when there is no file (disks, MAC addresses)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    found = []
    for number, raw in enumerate(text.splitlines(), 1):
        words = raw.split("#", 1)[0].split()
        if words:
            found.append((number, raw, words))
    return found


def read_mapping_file(path: Path = MAPPING_FILE) -> dict[str, str]:
    """The operator's mapping: "OLD NEW" per line, `#` comments; {} when there is no file."""
    pairs: dict[str, str] = {}
    for number, raw, words in mapping_lines(path):
        if len(words) != 2 or not all(w.startswith("/dev/") for w in words):
            raise ConfigError(
                f"{path} line {number}: {raw.strip()!r} is not 'OLD NEW' with two device paths.",
                hint="Write one saved disk and the disk that replaces it per line, e.g. "
                "'/dev/sda /dev/nvme0n1'.",
            )
        old, new = words
        if old in pairs or new in pairs.values():
            raise ConfigError(
                f"{path} line {number}: {old if old in pairs else new} is mapped twice.",
                hint="Map each saved disk to exactly one present disk.",
            )
        pairs[old] = new
    return pairs


def propose(
    saved: Iterable[Disk],
    present: Iterable[BlockDevice],
    *,
    protected: Iterable[str] = (),
    given: Mapping[str, str] | None = None,
) -> DiskMapping:
    """Place every saved disk on a present one by the rules in this module's docstring."""
    saved = list(saved)
    blocked = set(protected)
    free = {d.path: d for d in present if d.path not in blocked}
    result = DiskMapping()

    def take(old: Disk, new: str, why: str) -> None:
        result.pairs[old.path] = new
        result.reasons[old.path] = why
        free.pop(new, None)

    for old in saved:
        new = (given or {}).get(old.path)
        if new is None:
            continue
        if new not in free:
            why = "holds the rescue medium or the backup" if new in blocked else "is not here"
            raise ConfigError(
                f"The disk mapping maps {old.path} to {new}, which {why}.",
                hint=f"Correct {MAPPING_FILE}, or remove it to map the disks automatically.",
            )
        take(old, new, "the mapping file")
    open_disks = [d for d in saved if d.path not in result.pairs]
    for old in open_disks:
        same = [
            d
            for d in free.values()
            if (old.serial and d.serial == old.serial) or (old.wwn and d.wwn == old.wwn)
        ]
        if len(same) == 1:
            take(old, same[0].path, f"same serial/WWN ({old.serial or old.wwn})")
    claimed_by_identity = set(result.pairs.values())
    for old in [d for d in open_disks if d.path not in result.pairs]:
        here = free.get(old.path)
        if here is not None and here.path not in claimed_by_identity:
            take(old, here.path, "same name")  # too small: verify says so with the numbers
    for old in [d for d in open_disks if d.path not in result.pairs]:
        exact = [d for d in free.values() if d.size == old.size]
        if len(exact) == 1:
            take(old, exact[0].path, "the one disk of the same size")
    left = [d for d in open_disks if d.path not in result.pairs]
    for old in left:
        larger = sorted(d.path for d in free.values() if d.size >= old.size)
        if len(larger) == 1 and len(left) == 1:
            take(old, larger[0], "the one disk large enough")
        elif larger:
            result.ambiguous[old.path] = larger
        else:
            result.unplaced.append(old.path)
    return result


def mirrors_left_out(
    saved: Iterable[Disk], proposal: DiskMapping, redundant: Callable[[str], bool]
) -> list[str] | None:
    """The saved disks recover can go on without: when nothing is ambiguous and every saved
    disk without a place is a RAID1 mirror disk (its content is on the other members too),
    those disks, their arrays to run degraded; None otherwise. Ambiguity is never resolved
    here: which present disk gets wiped is the operator's choice."""
    if proposal.ambiguous or not proposal.unplaced:
        return None
    if not all(redundant(path) for path in proposal.unplaced):
        return None
    left = [d.path for d in saved if d.path in proposal.unplaced]
    proposal.unplaced.clear()
    return left


def candidate_table(
    saved: Iterable[Disk],
    present: Iterable[BlockDevice],
    proposal: DiskMapping,
    protected: Iterable[str] = (),
) -> str:
    """The table verify prints when a mapping is not complete."""
    lines = ["saved disk (size, serial) -> mapped to / candidates"]
    for old in saved:
        if old.path in proposal.pairs:
            where = f"{proposal.pairs[old.path]} ({proposal.reasons[old.path]})"
        elif old.path in proposal.ambiguous:
            where = "one of " + ", ".join(proposal.ambiguous[old.path])
        else:
            where = "no free disk large enough"
        lines.append(f"  {old.path} ({old.size} bytes, {old.serial or 'no serial'}) -> {where}")
    lines.append("present disks:")
    never = set(protected)
    for d in present:
        serial, transport = d.serial or "no serial", d.tran or "?"
        why = ": holds the rescue medium or the backup, never a target" if d.path in never else ""
        lines.append(f"  {d.path} ({d.size} bytes, {serial}, {transport}){why}")
    return "\n".join(lines)


def partition_path(disk: str, number: int) -> str:
    """The kernel's name of partition `number` of `disk`: sda1, nvme0n1p1, mmcblk0p1."""
    return f"{disk}p{number}" if disk[-1].isdigit() else f"{disk}{number}"


def translation(layout: Layout, pairs: Mapping[str, str]) -> dict[str, str]:
    """Old device path -> new one, for the mapped disks and all their partitions."""
    table: dict[str, str] = {}
    for disk in layout.disks:
        new = pairs.get(disk.path)
        if new is None or new == disk.path:
            continue
        table[disk.path] = new
        for part in disk.partitions:
            table[part.path] = partition_path(new, part.number)
    return table


def _rewrite(value: Any, table: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        if value in table:
            return table[value]
        kind, sep, rest = value.partition(":")  # component ids: "part:/dev/vda1"
        if sep and rest in table:
            return f"{kind}:{table[rest]}"
        return value
    if isinstance(value, list):
        return [_rewrite(v, table) for v in value]
    if isinstance(value, dict):
        # the saved disk's own identity (serial, by-id links) describes the old disk
        return {
            k: v if k in ("serial", "wwn", "by_id", "by_path") else _rewrite(v, table)
            for k, v in value.items()
        }
    return value


def apply_mapping(layout: Layout, pairs: Mapping[str, str]) -> tuple[Layout, dict[str, str]]:
    """The layout with every device path translated, and the translation table used."""
    table = translation(layout, pairs)
    if not table:
        return layout, {}
    document = _rewrite(json.loads(to_json(layout)), table)
    return from_json(json.dumps(document), source="the mapped layout"), table


def rename_keys(values: Mapping[str, int], table: Mapping[str, str]) -> dict[str, int]:
    """A dict keyed by component ids or device paths, its keys translated like the layout."""
    return {_rewrite(key, table): value for key, value in values.items()}
