"""`mkmedia layoutonly`: write the recreate script for the saved layout, show it, run it."""

from __future__ import annotations

import argparse
import os
import stat
import sys
from collections.abc import Sequence
from pathlib import Path

from rescue_runtime.errors import EXIT_FAILURE, EXIT_OK, MissingError, UsageError
from rescue_runtime.layout.store import _write_atomic, load
from rescue_runtime.recover.options import add_layout_parser
from rescue_runtime.recover.recreate import SCRIPT_DIR, generate
from rescue_runtime.rescueconf import RESCUE_CONF
from rescue_runtime.run import spawn, which

# What only the rescue system has: its configuration (written at build time) and the
# status file its /init writes.
RESCUE_MARKERS = (str(RESCUE_CONF), "/run/mkmedia/init.status")


def in_rescue_system(markers: tuple[str, ...] = RESCUE_MARKERS) -> bool:
    return any(os.path.exists(m) for m in markers)


def is_block_device(path: str) -> bool:
    try:
        return stat.S_ISBLK(os.stat(path).st_mode)
    except OSError:
        return False


def write_script(text: str, directory: str, digest: str) -> Path:
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / f"recreate-{digest}.sh"
    _write_atomic(path, text)
    path.chmod(0o700)
    return path


def cmd_layoutonly(args: argparse.Namespace) -> int:
    layout = load(args.dir)
    plan = generate(
        layout,
        target=args.target,
        script_dir=args.script_dir,
        layout_dir=args.dir,
        source=f"{args.dir}/layout.json",
    )
    path = write_script(plan.script, args.script_dir, plan.layout_digest)
    print(f"recreate script: {path}")
    for warning in plan.warnings:
        print(f"warning: {warning}")
    if args.script_only:
        sys.stdout.write(plan.script)
        return EXIT_OK
    if not args.force and not in_rescue_system():
        raise UsageError(
            f"mkmedia layoutonly rewrites the disks {', '.join(plan.disks)} and runs only "
            f"inside the rescue system (none of {', '.join(RESCUE_MARKERS)} exists here).",
            hint=f"Review {path}; add --force to run it on this machine anyway.",
        )
    absent = [d for d in plan.disks if not is_block_device(d)]
    if absent:
        raise MissingError(
            f"The saved layout's disks {', '.join(absent)} are not on this machine; the "
            f"recreate script {path} writes only the layout's disks, so nothing was touched.",
            hint="Attach disks of the same names, or edit the layout for the disks present.",
        )
    missing = [p for p in plan.programs if which(p) is None]
    if missing:
        raise MissingError(
            f"The recreate script {path} needs {', '.join(missing)}, which this system lacks; "
            "no disk was touched.",
            hint="Add them to the recipe's PROGS and rebuild the rescue media.",
        )
    if args.restart:
        state = Path(args.script_dir) / f"state-{plan.layout_digest}"
        for item in sorted(state.glob("*")) if state.is_dir() else []:
            if item.is_file():
                item.unlink()
    print(f"writing {', '.join(plan.disks)}; log in {args.script_dir}", flush=True)
    env = {"TARGET": args.target}
    status = spawn(["bash", str(path)], env=env).wait()
    if status != 0:
        print(
            f"mkmedia: error: the recreate script {path} failed (exit status {status}); its "
            "last lines name the component. Fix the cause (you may edit the script) and run "
            f"`mkmedia layoutonly` or `bash {path}` again: finished components are skipped.",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    return EXIT_OK


def add_layoutonly_parser(
    subparsers: argparse._SubParsersAction, parents: Sequence[argparse.ArgumentParser] = ()
) -> argparse.ArgumentParser:
    p = add_layout_parser(
        subparsers,
        "layoutonly",
        help="recreate the saved disk layout (partitions ... mounts) and stop",
        target_is="mount the result here",
        parents=parents,
    )
    p.add_argument(
        "--script-dir",
        default=SCRIPT_DIR,
        help=f"where the script, its log and state go (default {SCRIPT_DIR})",
    )
    p.add_argument(
        "--script-only", action="store_true", help="write and show the script; do not run it"
    )
    p.add_argument(
        "--restart",
        action="store_true",
        help="forget finished components and build everything again",
    )
    p.add_argument("--force", action="store_true", help="run outside a rescue system too")
    p.set_defaults(func=cmd_layoutonly)
    return p
