"""The rescue medium's volume labels: one name, fitted into every name space that holds it.

    ISO 9660 volume identifier   32 d-characters (A-Z, 0-9, _): the label (ISO_VOLID)
    Joliet volume identifier     16 characters: the first 16 of that label
    FAT label of the EFI image   11 characters

A name longer than its space keeps its start and ends in `_` plus four hex digits of a hash of
the whole name, so two long host names that share their start still get different labels. The
Joliet label is a plain prefix of the ISO 9660 one because libblkid then reports the whole ISO
9660 label (/dev/disk/by-label), while a Joliet label that differs would replace it. GRUB finds
the medium by a marker file (/mkmedia/id-<hex>, see iso.py), not by a label, so it adds no limit.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

ISO9660_MAX = 32
JOLIET_MAX = 16
FAT_MAX = 11
_HASH_DIGITS = 4
_D_CHARACTERS = re.compile(r"^[A-Z0-9_]+$")
_NOT_D_CHARACTER = re.compile(r"[^A-Z0-9_]")


@dataclass(frozen=True)
class VolumeLabels:
    iso9660: str
    joliet: str
    fat: str


def fit(name: str, limit: int) -> str:
    """`name` when it fits in `limit` characters, else its start, '_' and a short hash."""
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:_HASH_DIGITS].upper()
    return f"{name[: limit - _HASH_DIGITS - 1]}_{digest}"


def d_characters(text: str) -> str:
    """`text` in ISO 9660 d-characters: upper case, anything else becomes '_'."""
    return _NOT_D_CHARACTER.sub("_", text.upper())


def default_label(host: str) -> str:
    """RESCUE_<HOST> (the host's first name component), fitted into 32 d-characters."""
    return fit(f"RESCUE_{d_characters(host.split('.')[0])}", ISO9660_MAX)


def label_problem(label: str) -> str | None:
    """Why `label` cannot be the ISO 9660 volume identifier; None when it can."""
    if not label:
        return "it is empty"
    if len(label) > ISO9660_MAX:
        return f"it has {len(label)} characters, over the {ISO9660_MAX} ISO 9660 allows"
    if not _D_CHARACTERS.match(label):
        return "ISO 9660 allows only upper-case letters A-Z, digits and '_' (d-characters)"
    return None


def suggestion(label: str) -> str:
    """A usable label close to `label`, for error messages."""
    return fit(d_characters(label), ISO9660_MAX) or "RESCUE"


def volume_labels(label: str) -> VolumeLabels:
    """Every label of the medium, from a valid ISO 9660 label (see label_problem)."""
    problem = label_problem(label)
    assert problem is None, f"{label!r}: {problem}"  # callers check first, with a message
    return VolumeLabels(iso9660=label, joliet=label[:JOLIET_MAX], fat=fit(label, FAT_MAX))
