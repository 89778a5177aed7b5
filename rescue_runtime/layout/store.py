"""Where a saved layout lives: layout.json (the data) and layout.txt (for people)."""

from __future__ import annotations

import os
from pathlib import Path

from rescue_runtime import atomic
from rescue_runtime.errors import ConfigError, MissingError, MkmediaError
from rescue_runtime.layout.model import Layout
from rescue_runtime.layout.render import render
from rescue_runtime.layout.serial import from_json, to_json

DEFAULT_DIR = "/var/lib/mkmedia/layout"
JSON_NAME = "layout.json"
TEXT_NAME = "layout.txt"


def _write_atomic(path: Path, text: str) -> None:
    """Write to a temporary file beside `path`, then rename: a reader never sees half."""
    atomic.write_text(path, text, mode=0o600)


def save(layout: Layout, directory: str | os.PathLike[str] = DEFAULT_DIR) -> Path:
    """Write layout.json and layout.txt; returns the JSON file's path."""
    target = Path(directory)
    try:
        target.mkdir(parents=True, exist_ok=True, mode=0o700)
        _write_atomic(target / TEXT_NAME, render(layout))
        # JSON last: its presence means a complete save.
        _write_atomic(target / JSON_NAME, to_json(layout))
    except OSError as exc:
        raise MkmediaError(
            f"Cannot save the layout in {target}: {exc.strerror or exc}"
            + (f" ({exc.filename})" if exc.filename else "")
            + ".",
            hint="Choose a directory mkmedia can write (--dir, or LAYOUT_DIR for builds).",
        ) from exc
    return target / JSON_NAME


def load(directory: str | os.PathLike[str] = DEFAULT_DIR) -> Layout:
    path = Path(directory) / JSON_NAME
    again = "Save the layout again (mkmedia layout save) or name the right directory (--dir)."
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MissingError(
            f"No saved layout at {path}.",
            hint="Save one first with `mkmedia layout save` (mkmedia build also saves it).",
        ) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"The saved layout {path} is not a text file (byte {exc.start} is not UTF-8).",
            hint=again,
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"The saved layout {path} cannot be read: {exc.strerror}.", hint=again
        ) from exc
    return from_json(text, source=str(path))
