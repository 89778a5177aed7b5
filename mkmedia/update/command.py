"""`mkmedia update pack`: the configuration and the command line turned into write_overlay()."""

from __future__ import annotations

import argparse
import re
import time
from dataclasses import replace
from pathlib import Path

import rescue_runtime
from mkmedia import __version__
from mkmedia.config import Config
from mkmedia.rootfs.rescuefiles import build_time
from mkmedia.steps.rootfs import rescue_config
from mkmedia.update.pack import LAYOUT_PATH, Packed, runtime_files, tree_files, write_overlay
from rescue_runtime.errors import UsageError
from rescue_runtime.rescueconf import RESCUE_CONF

_HOST = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$")


def add_update_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    parents: list[argparse.ArgumentParser],
    recipe_help: str,
) -> None:
    update = sub.add_parser(
        "update",
        help="make overlays that update a running rescue system (`mkmedia update` there)",
        parents=parents,
    )
    actions = update.add_subparsers(dest="update_command", metavar="ACTION")
    pack = actions.add_parser(
        "pack",
        help="write an overlay of this host's configuration and layout (optionally runtime)",
        parents=parents,
    )
    pack.add_argument("recipe", nargs="?", type=Path, help=recipe_help)
    pack.add_argument("-o", "--output", type=Path, required=True, help="the overlay to write")
    pack.add_argument(
        "--host", metavar="NAME", help="the host the overlay is for (default: this host's name)"
    )
    pack.add_argument(
        "--include-runtime",
        action="store_true",
        help="carry this mkmedia's rescue runtime code too (rescue_runtime/)",
    )
    pack.add_argument(
        "--sign-key",
        type=Path,
        metavar="KEY",
        help="sign with this SSH private key (ssh-keygen -Y sign -n mkmedia-update)",
    )


def pack_for_host(
    config: Config,
    output: Path,
    *,
    host: str | None = None,
    include_runtime: bool = False,
    sign_key: Path | None = None,
    epoch: int | None = None,
) -> Packed:
    """The overlay of what the rescue system has for this configuration's host."""
    if host is not None and not _HOST.match(host):
        raise UsageError(
            f"--host {host!r} is not a host name.", hint="Give a name like db7 or db7.example.com."
        )
    created = build_time(epoch)
    rescue = rescue_config(config, created=created)
    if host:
        rescue = replace(rescue, hostname=host)
    files = {str(RESCUE_CONF).lstrip("/"): rescue.to_json().encode()}
    layout_dir = Path(config.get_str("LAYOUT_DIR"))
    if layout_dir.is_dir():
        files.update(tree_files(layout_dir, LAYOUT_PATH))
    if include_runtime:
        files.update(runtime_files(Path(rescue_runtime.__file__).parent))
    mtime = epoch if epoch is not None else int(time.time())
    return write_overlay(
        output,
        files,
        host=rescue.hostname,
        created=created,
        version=__version__,
        mtime=mtime,
        sign_key=sign_key,
    )
