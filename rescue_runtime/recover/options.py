"""The options every rescue workflow on a saved layout takes (mountonly, layoutonly,
recover): where the layout is and where the recreated or activated system goes."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from rescue_runtime.layout.store import DEFAULT_DIR

# Where the system is mounted for repair or recreated, as ReaR's TARGET_FS_ROOT.
DEFAULT_TARGET = "/mnt/local"


def add_layout_parser(
    subparsers: argparse._SubParsersAction,
    name: str,
    *,
    help: str,
    target_is: str,
    parents: Sequence[argparse.ArgumentParser] = (),
) -> argparse.ArgumentParser:
    """A subcommand that reads the saved layout from --dir and works under --target;
    `target_is` says what --target is for this command."""
    p = subparsers.add_parser(name, help=help, parents=list(parents))
    p.add_argument("--dir", default=DEFAULT_DIR, help=f"layout directory (default {DEFAULT_DIR})")
    p.add_argument(
        "--target", default=DEFAULT_TARGET, help=f"{target_is} (default {DEFAULT_TARGET})"
    )
    return p
