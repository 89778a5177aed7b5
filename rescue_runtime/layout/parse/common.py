"""Helpers shared by the parsers: errors, number coercion, KEY=VALUE blocks."""

from __future__ import annotations

import json
import re
from typing import Any

from rescue_runtime.errors import MkmediaError

_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4, "p": 1024**5}


class ParseError(MkmediaError):
    """A tool printed something its parser does not understand."""

    def __init__(self, tool: str, problem: str) -> None:
        super().__init__(
            f"Could not understand the output of {tool}: {problem}.",
            hint="Please report this with the tool's version and output (the log holds both).",
        )
        self.tool = tool


def load_json(tool: str, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParseError(tool, f"invalid JSON at line {exc.lineno} ({exc.msg})") from exc


def to_int(value: Any) -> int | None:
    """Numbers arrive as ints, or as strings from older tools ("1234", "1", ""); None stays."""
    if value is None or isinstance(value, bool):
        return None if value is None else int(value)
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if not text:
        return None
    try:
        return int(text, 0) if text.lower().startswith("0x") else int(text)
    except ValueError:
        return None


def to_bool(value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes"):
        return True
    if text in ("0", "false", "no"):
        return False
    return None


def size_with_unit(text: str) -> int | None:
    """ "512K", "64.00 MiB", "4096" -> bytes (binary units)."""
    m = re.fullmatch(r"\s*([0-9.]+)\s*([kmgtpKMGTP]?)(?:i?[bB])?\s*", text)
    if not m:
        return None
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def key_value_blocks(text: str) -> list[dict[str, str]]:
    """KEY=VALUE lines, blocks separated by blank lines (blkid -o export and similar)."""
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line:
            if current:
                blocks.append(current)
                current = {}
            continue
        key, sep, value = line.partition("=")
        if sep:
            current[key] = value
    if current:
        blocks.append(current)
    return blocks


def nonempty(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None
