"""`mkmedia mountonly` (repair: the saved layout mounted under /mnt/local) and `mkmedia umount`.

Works with a rescue-only media: it needs the saved layout, no backup. What it brings up is
recorded in /run/mkmedia (rescue_runtime/recover/activate_state.py) so that `umount` undoes
exactly that; the breadcrumb it leaves keeps `recover` from running on disks it changed.

mountonly is a workflow on the engine (rescue_runtime/workflow.py): verify, mount, bind, with
the hooks of /etc/mkmedia/hooks.d/ around each stage and `--simulate`. Volumes and mounts share
one stage because they come up in dependency order (a mount may come before the LUKS volume
another one needs), so that a failure leaves what was up before it.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from rescue_runtime import rescueconf
from rescue_runtime import workflow as engine
from rescue_runtime.errors import EXIT_OK, UsageError
from rescue_runtime.layout.model import Layout
from rescue_runtime.layout.store import load
from rescue_runtime.recover.activate import (
    Activator,
    deactivate,
    require_tools,
)
from rescue_runtime.recover.activate import Step as Action
from rescue_runtime.recover.options import add_layout_parser

log = logging.getLogger("mkmedia.mountonly")

MOUNTONLY = engine.Workflow(
    "mountonly",
    "open, assemble, activate and mount the saved layout for repair",
    ("verify", "mount", "bind"),
)


@dataclass
class MountContext:
    """What the mountonly steps share: the options, then what each step found."""

    layout_dir: str
    target: str
    ro: bool
    key_file_items: list[str]
    layout: Layout = field(default_factory=Layout)
    key_files: dict[str, str] = field(default_factory=dict)
    activator: Activator | None = None
    actions: list[Action] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def active(self) -> Activator:
        if self.activator is None:  # the verify stage sets it; a step order error otherwise
            raise RuntimeError("mountonly: no activator before verify/030_plan")
        return self.activator


STEPS: list[engine.Step[MountContext, None]] = []  # no conditions: every step always runs


StepFunc = Callable[[MountContext], None]


def step(stage: str, order: int) -> Callable[[StepFunc], StepFunc]:
    return engine.register(STEPS, stage, order)


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


@step("verify", 10)
def load_layout(ctx: MountContext) -> None:
    """Read the saved layout and check the --key-file options against it."""
    ctx.layout = load(ctx.layout_dir)
    ctx.key_files = parse_key_files(ctx.key_file_items, [luks.name for luks in ctx.layout.luks])


@step("verify", 20)
def check_tools(ctx: MountContext) -> None:
    """Check that the tools every mountonly needs are here."""
    require_tools()


@step("verify", 30)
def plan_actions(ctx: MountContext) -> None:
    """Plan what to bring up, in dependency order; nothing is changed yet."""
    ctx.activator = Activator(ctx.layout, target=ctx.target, ro=ctx.ro, key_files=ctx.key_files)
    ctx.actions, notes = ctx.activator.planned()
    ctx.notes += notes


@step("mount", 10)
def bring_up(ctx: MountContext) -> None:
    """Assemble MD arrays, open LUKS volumes, activate VGs and mount, in dependency order."""
    ctx.notes += ctx.active().bring_up([a for a in ctx.actions if a.kind != "bind"])


@step("bind", 10)
def bind_pseudo_filesystems(ctx: MountContext) -> None:
    """Bind /proc, /sys, /dev and /run into the target so that chroot works."""
    ctx.notes += ctx.active().bring_up([a for a in ctx.actions if a.kind == "bind"])


def cmd_mountonly(args: argparse.Namespace) -> int:
    planned = engine.plan(MOUNTONLY, STEPS, None)
    if args.simulate:
        print(engine.describe_plan(MOUNTONLY, planned, rescueconf.HOOKS_DIR))
        return EXIT_OK
    ctx = MountContext(args.dir, args.target, args.ro, args.key_file)
    env = {"MKMEDIA_TARGET": os.path.normpath(args.target), "MKMEDIA_LAYOUT_DIR": args.dir}
    engine.run_plan(MOUNTONLY, planned, ctx, hooks_dir=rescueconf.HOOKS_DIR, env=env, say=_quiet)
    for note in ctx.notes + ctx.active().closing_notes():
        print(f"mkmedia mountonly: note: {note}")
    mounts = [e for e in ctx.active().state.entries if e.kind == "mount"]
    mode = "read-only" if args.ro else "read-write"
    print(f"mkmedia mountonly: {len(mounts)} file systems mounted {mode} under {args.target}.")
    print(f"  Repair the system with:   chroot {args.target}")
    print("  When done, leave the chroot and run:   mkmedia umount")
    return EXIT_OK


def _quiet(line: str) -> None:
    """The step lines go to the log: mountonly's own lines say what it did."""
    log.info("%s", line)


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
    p = add_layout_parser(
        subparsers,
        "mountonly",
        help="open, assemble, activate and mount the saved layout under /mnt/local for repair",
        target_is="where to mount it",
        parents=parents,
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
    p.add_argument("--simulate", action="store_true", help="list the steps and hooks, run nothing")
    subparsers.add_parser(
        "umount",
        help="take down what mountonly brought up (unmount, deactivate, close, stop)",
        parents=list(parents),
    )
