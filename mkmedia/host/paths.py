"""Where mkmedia's own data (recipes, boot loader templates) lives: package data in mkmedia/data/.

The data ships inside the package (wheel or checkout alike) and is found through
importlib.resources; MKMEDIA_DATA_DIR points at another data directory (tests use it).
"""

from __future__ import annotations

import importlib.resources
import os
from pathlib import Path

from rescue_runtime.errors import MissingError

DATA_DIR_VARIABLE = "MKMEDIA_DATA_DIR"


def data_dir() -> Path:
    """The directory holding recipes/ and bootloaders/: the package's data/ or MKMEDIA_DATA_DIR."""
    override = os.environ.get(DATA_DIR_VARIABLE)
    if override:
        return Path(override)
    root = importlib.resources.files("mkmedia") / "data"
    # Recipes are read as files and templates through a file system loader: an install that
    # is not unpacked on a file system (a zip import) cannot serve them.
    if not isinstance(root, Path):
        raise MissingError(
            f"mkmedia's built-in data ({root}) is not a directory on a file system.",
            hint="Install mkmedia from its wheel with pip (unpacked), not as a zip archive.",
        )
    return root


def recipes_dir() -> Path:
    return data_dir() / "recipes"


def bootloaders_dir() -> Path:
    return data_dir() / "bootloaders"


def missing_data(what: str, path: Path) -> MissingError:
    """The error for a built-in file that should have come with mkmedia but is not there."""
    override = os.environ.get(DATA_DIR_VARIABLE)
    if override:
        return MissingError(
            f"The built-in {what} {path} is missing from {DATA_DIR_VARIABLE}={override}: "
            "mkmedia cannot build without it.",
            hint=f"Point {DATA_DIR_VARIABLE} at a directory holding recipes/ and bootloaders/, "
            "or unset it.",
        )
    return MissingError(
        f"The built-in {what} {path} is missing from the installed mkmedia package: mkmedia "
        "cannot build without it.",
        hint="The installation is incomplete: reinstall mkmedia from its wheel "
        "(pip install --force-reinstall mkmedia-*.whl).",
    )


DEFAULT_CONFIG_DIR = Path("/etc/mkmedia")
