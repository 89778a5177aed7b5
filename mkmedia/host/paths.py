"""Where mkmedia's own data (recipes, boot loader templates) lives."""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE_PARENT = Path(__file__).resolve().parents[2]  # the tree holding mkmedia/


def data_dir() -> Path:
    """The directory holding recipes/ and bootloaders/ (the source tree, or MKMEDIA_DATA_DIR)."""
    override = os.environ.get("MKMEDIA_DATA_DIR")
    return Path(override) if override else _PACKAGE_PARENT


def recipes_dir() -> Path:
    return data_dir() / "recipes"


def bootloaders_dir() -> Path:
    return data_dir() / "bootloaders"


DEFAULT_CONFIG_DIR = Path("/etc/mkmedia")
