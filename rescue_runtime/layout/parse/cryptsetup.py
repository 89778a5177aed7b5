"""`cryptsetup luksDump DEV` for LUKS1 and LUKS2 (cryptsetup 2.0 to 2.7) and, for LUKS2,
`cryptsetup luksDump --dump-json-metadata DEV` (2.4 and later) when available."""

from __future__ import annotations

import re
from dataclasses import dataclass

from rescue_runtime.layout.parse.common import ParseError, load_json, to_int


@dataclass
class LuksHeader:
    version: int
    uuid: str | None = None
    label: str | None = None
    subsystem: str | None = None
    cipher: str | None = None
    key_size: int | None = None  # bits
    hash: str | None = None
    pbkdf: str | None = None
    pbkdf_iterations: int | None = None
    pbkdf_memory: int | None = None  # KiB
    pbkdf_parallel: int | None = None
    sector_size: int | None = None
    data_offset: int | None = None  # bytes


def _field(text: str, name: str) -> str | None:
    m = re.search(rf"^\s*{re.escape(name)}:\s*(.*?)\s*$", text, re.MULTILINE)
    return m.group(1) if m else None


def _none_marker(value: str | None) -> str | None:
    return None if value is None or value.startswith("(no ") else value


def parse_dump(text: str) -> LuksHeader:
    version = to_int(_field(text, "Version"))
    if version not in (1, 2):
        raise ParseError("cryptsetup luksDump", "no 'Version: 1' or 'Version: 2' line")
    if version == 1:
        mode = _field(text, "Cipher mode")
        name = _field(text, "Cipher name")
        offset = to_int(_field(text, "Payload offset"))
        return LuksHeader(
            version=1,
            uuid=_field(text, "UUID"),
            cipher=f"{name}-{mode}" if name and mode else name,
            key_size=to_int(_field(text, "MK bits")),
            hash=_field(text, "Hash spec"),
            pbkdf="pbkdf2",
            pbkdf_iterations=to_int(_field(text.partition("ENABLED")[2], "Iterations")),
            sector_size=512,
            data_offset=offset * 512 if offset is not None else None,
        )
    segments = text.partition("Data segments:")[2].partition("Keyslots:")[0]
    keyslots = text.partition("Keyslots:")[2].partition("Tokens:")[0]
    digests = text.partition("Digests:")[2]
    key = re.search(r"^\s*Key:\s*(\d+) bits", keyslots, re.MULTILINE)
    sector = re.search(r"sector:\s*(\d+)", segments)
    seg_offset = re.search(r"offset:\s*(\d+)", segments)
    return LuksHeader(
        version=2,
        uuid=_field(text, "UUID"),
        label=_none_marker(_field(text, "Label")),
        subsystem=_none_marker(_field(text, "Subsystem")),
        cipher=_field(segments, "cipher"),
        key_size=int(key.group(1)) if key else None,
        hash=_field(digests, "Hash") or _field(keyslots, "AF hash"),
        pbkdf=_field(keyslots, "PBKDF"),
        pbkdf_iterations=to_int(_field(keyslots, "Time cost") or _field(keyslots, "Iterations")),
        pbkdf_memory=to_int(_field(keyslots, "Memory")),
        pbkdf_parallel=to_int(_field(keyslots, "Threads")),
        sector_size=int(sector.group(1)) if sector else None,
        data_offset=int(seg_offset.group(1)) if seg_offset else None,
    )


def merge_json_metadata(header: LuksHeader, text: str) -> LuksHeader:
    """The JSON metadata is exact where the text dump is formatted; it has no UUID/label."""
    data = load_json("cryptsetup luksDump --dump-json-metadata", text)
    segments = data.get("segments", {})
    seg = segments.get("0") or next(iter(segments.values()), None)
    if isinstance(seg, dict):
        header.cipher = seg.get("encryption", header.cipher)
        header.sector_size = to_int(seg.get("sector_size")) or header.sector_size
        header.data_offset = to_int(seg.get("offset")) or header.data_offset
    slots = data.get("keyslots", {})
    slot = next(iter(slots.values()), None) if slots else None
    if isinstance(slot, dict):
        size = to_int(slot.get("key_size"))
        header.key_size = size * 8 if size else header.key_size
        kdf = slot.get("kdf", {})
        header.pbkdf = kdf.get("type", header.pbkdf)
        header.pbkdf_iterations = to_int(kdf.get("iterations", kdf.get("time")))
        header.pbkdf_memory = to_int(kdf.get("memory"))
        header.pbkdf_parallel = to_int(kdf.get("cpus"))
    digests = data.get("digests", {})
    digest = next(iter(digests.values()), None) if digests else None
    if isinstance(digest, dict) and digest.get("hash"):
        header.hash = digest["hash"]
    return header
