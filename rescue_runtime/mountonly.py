"""`mkmedia mountonly` (repair: the saved layout mounted under /mnt/local) and `mkmedia umount`.

Works with a rescue-only media: it needs the saved layout, no backup. What it brings up is
recorded in /run/mkmedia (rescue_runtime/recover/activate_state.py) so that `umount` undoes
exactly that; the breadcrumb it leaves keeps `recover` from running on disks it changed.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

from rescue_runtime.errors import EXIT_OK, UsageError
from rescue_runtime.layout.store import DEFAULT_DIR, load
from rescue_runtime.recover.activate import DEFAULT_TARGET, Activator, deactivate


def parse_key_files(items: list[str], names: list[str]) -> dict[str, str]:
    """NAME=PATH for one LUKS mapping, or PATH alone for every one."""
    keys: dict[str, str] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep:
            name, path = "*", item
        if not os.path.isfile(path):
            raise UsageError(
                f"--key-file {item}: {path} is no file.",
                hint="Give --key-file NAME=PATH with the key file of the LUKS mapping NAME.",
            )
        if name != "*" and name not in names:
            known = ", ".join(names) or "none"
            raise UsageError(
                f"--key-file {item}: the saved layout has no LUKS mapping {name!r} "
                f"(its mappings: {known}).",
                hint="Name the mapping as `mkmedia layout show` lists it.",
            )
        keys[name] = path
    return keys


def cmd_mountonly(args: argparse.Namespace) -> int:
    layout = load(args.dir)
    keys = parse_key_files(args.key_file, [luks.name for luks in layout.luks])
    activator = Activator(layout, target=args.target, ro=args.ro, key_files=keys)
    notes = activator.run()
    for note in notes:
        print(f"mkmedia mountonly: note: {note}")
    mounts = [e for e in activator.state.entries if e.kind == "mount"]
    mode = "read-only" if args.ro else "read-write"
    print(f"mkmedia mountonly: {len(mounts)} file systems mounted {mode} under {args.target}.")
    print(f"  Repair the system with:   chroot {args.target}")
    print("  When done, leave the chroot and run:   mkmedia umount")
    return EXIT_OK


def cmd_umount(args: argparse.Namespace) -> int:
    taken = deactivate()
    if not taken:
        print("mkmedia umount: nothing that mountonly brought up is up.")
    else:
        print(f"mkmedia umount: took down {len(taken)} mounts, volumes and arrays.")
    return EXIT_OK


def add_mountonly_parsers(
    subparsers: argparse._SubParsersAction,
    parents: Sequence[argparse.ArgumentParser] = (),
) -> None:
    p = subparsers.add_parser(
        "mountonly",
        help="open, assemble, activate and mount the saved layout under /mnt/local for repair",
        parents=list(parents),
    )
    p.add_argument("--dir", default=DEFAULT_DIR, help=f"layout directory (default {DEFAULT_DIR})")
    p.add_argument(
        "--target", default=DEFAULT_TARGET, help=f"where to mount it (default {DEFAULT_TARGET})"
    )
    p.add_argument("--ro", action="store_true", help="mount the file systems read-only")
    p.add_argument(
        "--key-file",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="open the LUKS mapping NAME with this key file instead of asking for its "
        "passphrase (PATH alone: for every mapping); repeatable",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="run even though an earlier mountonly changed the disks' state (warns)",
    )
    p.set_defaults(func=cmd_mountonly)
    u = subparsers.add_parser(
        "umount",
        help="take down what mountonly brought up (unmount, deactivate, close, stop)",
        parents=list(parents),
    )
    u.set_defaults(func=cmd_umount)
