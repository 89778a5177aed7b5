"""`tune2fs -l DEV` and `dumpe2fs -h DEV` (same "Key:   value" superblock listing)."""

from __future__ import annotations

from rescue_runtime.layout.model import ExtParams
from rescue_runtime.layout.parse.common import ParseError, to_int

# State flags that come and go with mounting, not properties of the file system.
TRANSIENT_FEATURES = {"needs_recovery", "orphan_present"}


def superblock_fields(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key and not key.startswith(" ") and key not in fields:
            fields[key.strip()] = value.strip()
    return fields


def parse(text: str) -> tuple[ExtParams, str | None, str | None]:
    """Returns (parameters, UUID, label)."""
    f = superblock_fields(text)
    if "Block size" not in f or "Filesystem UUID" not in f:
        raise ParseError("tune2fs -l", "no 'Block size' or 'Filesystem UUID' line")
    blocks = to_int(f.get("Block count"))
    reserved = to_int(f.get("Reserved block count"))
    label = f.get("Filesystem volume name")
    percent = None
    if blocks and reserved is not None:
        percent = round(100.0 * reserved / blocks, 2)
    params = ExtParams(
        features=[
            x for x in f.get("Filesystem features", "").split() if x not in TRANSIENT_FEATURES
        ],
        block_size=to_int(f.get("Block size")),
        inode_size=to_int(f.get("Inode size")),
        inode_count=to_int(f.get("Inode count")),
        block_count=blocks,
        reserved_blocks=reserved,
        reserved_percent=percent,
        revision=f.get("Filesystem revision #"),
        mount_options=[o for o in f.get("Default mount options", "").split() if o != "(none)"],
    )
    return params, f.get("Filesystem UUID"), None if label in (None, "<none>") else label
