"""`mkmedia recover` and `mkmedia restoreonly` as workflows on the engine.

recover runs verify, recreate, restore and finalize (ReaR's stages): verify checks everything
that can be checked before the first write, so a recovery that cannot succeed stops with the
disks untouched. restoreonly runs verify and restore into a target that is mounted already (by
an earlier recover or by mountonly). Every command goes to the log file in /var/log/mkmedia/,
which finalize copies into the recovered system.
"""

from __future__ import annotations

import argparse
import datetime
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from rescue_runtime import features, rescueconf
from rescue_runtime import workflow as engine
from rescue_runtime.errors import EXIT_OK, MkmediaError, UsageError
from rescue_runtime.recover import report, stages, verify  # noqa: F401 - stages, verify register steps
from rescue_runtime.recover.ask import Asker
from rescue_runtime.recover.context import STEPS, RecoverContext, RecoverOptions, Subject
from rescue_runtime.recover.options import add_layout_parser
from rescue_runtime.recover.recreate import SCRIPT_DIR
from rescue_runtime.recover.recreate_cli import in_rescue_system
from rescue_runtime.run import run
from rescue_runtime.update import apply_configured_update

LOG_DIR = Path("/var/log/mkmedia")
# The last line of the last run (ok or the error): /init says it on every console.
OUTCOME = Path("/run/mkmedia/recover.outcome")

RECOVER = engine.Workflow(
    "recover",
    "recreate the disk layout, restore the backup, reinstall the boot loader",
    ("verify", "recreate", "restore", "finalize"),
)
RESTOREONLY = engine.Workflow(
    "restoreonly",
    "restore the backup into the mounted target (after recover or mountonly)",
    ("verify", "restore"),
)
WORKFLOWS = {w.name: w for w in (RECOVER, RESTOREONLY)}


def open_log(name: str, directory: Path = LOG_DIR) -> Path | None:
    """A log file for this run holding every command and its output (None when /var/log
    cannot be written: the run goes on with the console only)."""
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d-%H%M%S")
    path = directory / f"{name}-{stamp}.log"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(path)
    except OSError:
        return None
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger("mkmedia")
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    os.chmod(path, 0o600)
    return path


def cmd_recover(args: argparse.Namespace) -> int:
    if getattr(args, "demo", None):
        from rescue_runtime.recover.demo import cmd_demo

        return cmd_demo(args)
    workflow = WORKFLOWS[args.command]
    subject = Subject(unattended=args.unattended)
    planned = engine.plan(workflow, STEPS, subject)
    if args.simulate:
        print(engine.describe_plan(workflow, planned, rescueconf.HOOKS_DIR))
        return EXIT_OK
    if workflow is RECOVER and not features.RECOVER.ready:
        mode = "unattended" if args.unattended else "interactive"
        raise MkmediaError(
            f"{features.RECOVER.missing} (asked for an {mode} recovery); no disk was touched.",
            hint="Use the shell to repair the machine by hand.",
        )
    if workflow is RESTOREONLY:
        require_mounted(args.target, args.command)
    log_file = open_log(workflow.name)
    if workflow is RECOVER and in_rescue_system():
        # RECOVERY_UPDATE_URL: one golden media, each machine's own configuration
        applied = apply_configured_update(rescueconf.load())
        if applied:
            print(f"mkmedia recover: {applied}")
    ctx = RecoverContext(
        options=RecoverOptions(
            layout_dir=args.dir,
            target=args.target,
            script_dir=args.script_dir,
            unattended=args.unattended,
            force=args.force,
            restart=getattr(args, "restart", False),
        ),
        config=rescueconf.load(),
        ask=Asker(unattended=args.unattended),
        stages=workflow.stages,
        log_file=log_file,
    )
    env = {"MKMEDIA_TARGET": os.path.normpath(args.target), "MKMEDIA_LAYOUT_DIR": args.dir}
    print(f"mkmedia {workflow.name}: log in {log_file or '(none: /var/log not writable)'}")
    record_outcome("running")
    if workflow is RECOVER:
        started = report.start(workflow.name)
        print(f"mkmedia recover: recovery report in {started or '(none: not writable)'}")
    try:
        with ctx.resources:
            engine.run_plan(workflow, planned, ctx, hooks_dir=rescueconf.HOOKS_DIR, env=env)
    except MkmediaError as exc:
        record_outcome(f"{exc} (log: {log_file})")
        raise
    record_outcome("finished")
    print(f"mkmedia {workflow.name}: finished.")
    if workflow is RECOVER and not args.unattended:
        print(f"  The recovered system is mounted under {args.target}; reboot when ready.")
    return EXIT_OK


def record_outcome(text: str, path: Path | None = None) -> None:
    path = path or OUTCOME
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
    except OSError:
        pass  # a read-only /run: the console has the message anyway


def last_outcome(path: Path | None = None) -> str:
    try:
        return (path or OUTCOME).read_text().strip()
    except OSError:
        return ""


def require_mounted(target: str, command: str) -> None:
    found = run(["findmnt", "-rn", "--mountpoint", target], check=False)
    if found.returncode != 0:
        raise UsageError(
            f"mkmedia {command} works on the recovered system mounted under {target}, and "
            "nothing is mounted there.",
            hint="Run `mkmedia mountonly` (or `mkmedia layoutonly`) first.",
        )


def add_recover_parsers(
    subparsers: argparse._SubParsersAction, parents: Sequence[argparse.ArgumentParser] = ()
) -> None:
    helps = {
        "recover": "recreate the disk layout, restore the backup, reinstall the boot loader",
        "restoreonly": "restore the backup into the system mounted under --target",
    }
    for name, text in helps.items():
        p = add_layout_parser(
            subparsers, name, help=text, target_is="the recovered system", parents=parents
        )
        p.add_argument("--unattended", action="store_true", help="ask no questions")
        p.add_argument(
            "--force",
            action="store_true",
            help="run outside a rescue system, or after mountonly changed the disks (warns)",
        )
        p.add_argument(
            "--simulate", action="store_true", help="list the stages, steps and hooks, run nothing"
        )
        p.add_argument(
            "--script-dir",
            default=SCRIPT_DIR,
            help=f"where the recreate script, its log and state go (default {SCRIPT_DIR})",
        )
        if name == "recover":
            p.add_argument(
                "--restart",
                action="store_true",
                help="forget finished components and build and restore everything again",
            )
            p.add_argument(
                "--demo",
                metavar="DIR",
                help="restore the backup into DIR (new or empty) and touch no disk",
            )
