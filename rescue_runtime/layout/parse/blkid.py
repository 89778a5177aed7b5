"""`blkid -o export DEV...`: one KEY=VALUE block per device, keyed by DEVNAME."""

from __future__ import annotations

from rescue_runtime.layout.parse.common import key_value_blocks


def parse(text: str) -> dict[str, dict[str, str]]:
    return {b["DEVNAME"]: b for b in key_value_blocks(text) if "DEVNAME" in b}
