"""`mkmedia finalizeonly`: finalize a system an earlier recover or mountonly left mounted."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from rescue_runtime import rescueconf
from rescue_runtime.errors import EXIT_OK, MissingError, UsageError
from rescue_runtime.layout.model import Layout
from rescue_runtime.layout.store import load
from rescue_runtime.recover import finalize_network
from rescue_runtime.recover.activate import under, wanted_mount
from rescue_runtime.recover.ask import Asker
from rescue_runtime.recover.finalize import FinalizeRequest, finalize, finalize_programs
from rescue_runtime.recover.options import add_layout_parser
from rescue_runtime.recover.recreate import KEY_DIR, SCRIPT_DIR
from rescue_runtime.recover.recreate_cli import RESCUE_MARKERS, in_rescue_system
from rescue_runtime.recover.report import report_path
from rescue_runtime.recover.workflow import open_log
from rescue_runtime.run import run, which

# The rescue system's logs: its /init's, mkmedia's own, the recreate scripts'.
LOG_GLOBS = ("/run/mkmedia/init.log", "/var/log/mkmedia/*.log", f"{SCRIPT_DIR}/*.log")


def rescue_logs(globs: Sequence[str] = LOG_GLOBS) -> list[Path]:
    found: list[Path] = []
    for pattern in globs:
        path = Path(pattern)
        found += sorted(Path(path.parent).glob(path.name))
    found.append(report_path())  # the recovery report (recover/report.py)
    return [p for p in found if p.is_file()]


def unmounted(layout: Layout, target: str) -> list[str]:
    """The layout's mount points that are not mounted under the target (findmnt)."""
    missing = []
    for mount in layout.mounts:
        if not wanted_mount(mount):
            continue
        path = under(target, mount.mountpoint)
        if not run(["findmnt", "--mountpoint", path], check=False).ok:
            missing.append(mount.mountpoint)
    return missing


def cmd_finalizeonly(args: argparse.Namespace) -> int:
    layout = load(args.dir)
    if not args.force and not in_rescue_system():
        raise UsageError(
            "mkmedia finalizeonly writes boot loaders and LUKS key slots and runs only inside "
            f"the rescue system (none of {', '.join(RESCUE_MARKERS)} exists here).",
            hint="Add --force to run it on this machine anyway.",
        )
    missing = unmounted(layout, args.target)
    if missing:
        raise UsageError(
            f"finalizeonly needs the restored system mounted under {args.target}, but "
            f"{', '.join(missing)} of the saved layout {'is' if len(missing) == 1 else 'are'} "
            "not mounted there; nothing was changed.",
            hint="Run `mkmedia mountonly` or `mkmedia recover` first.",
        )
    missing_tools = [p for p in finalize_programs(layout) if which(p) is None]
    if missing_tools:
        raise MissingError(
            f"finalize needs {', '.join(missing_tools)}, which this system lacks.",
            hint="Add them to the recipe's PROGS and rebuild the rescue media.",
        )
    log_file = open_log("finalizeonly")
    print(f"mkmedia finalizeonly: log in {log_file or '(none: /var/log not writable)'}")
    nics = finalize_network.resolve_nics(
        finalize_network.saved_nics(rescueconf.load().saved_interfaces),
        finalize_network.present_nics(),
        finalize_network.read_mac_mapping(),
        None if args.unattended else Asker(unattended=False),
    )
    changed = [f"--rebuild-initramfs given ({reason})" for reason in args.rebuild_initramfs]
    request = FinalizeRequest(
        layout=layout,
        target=Path(args.target),
        key_dir=Path(args.key_dir),
        logs=rescue_logs(),  # this run's log among them (LOG_GLOBS)
        ask=None if args.unattended else Asker(unattended=False),
        changed=changed,
        nics=nics,
    )
    for note in finalize(request):
        print(f"mkmedia finalizeonly: {note}", flush=True)
    print(f"mkmedia finalizeonly: done; {args.target} stays mounted (`mkmedia umount`).")
    return EXIT_OK


HELP = (
    "reinstall the boot loader, LUKS keys and initramfs of the system mounted under "
    "/mnt/local (after mountonly or recover)"
)


def add_finalizeonly_parser(
    subparsers: argparse._SubParsersAction, parents: Sequence[argparse.ArgumentParser] = ()
) -> argparse.ArgumentParser:
    target_is = "where the restored system is mounted"
    p = add_layout_parser(
        subparsers, "finalizeonly", help=HELP, target_is=target_is, parents=parents
    )
    p.add_argument("--unattended", action="store_true", help="ask no questions")
    p.add_argument("--key-dir", default=KEY_DIR, help=f"temporary LUKS keys (default {KEY_DIR})")
    p.add_argument(
        "--rebuild-initramfs", action="append", default=[], metavar="REASON",
        help="rebuild the initramfs and grub.cfg, saying why in the log; repeatable",
    )  # fmt: skip
    p.add_argument("--force", action="store_true", help="run outside a rescue system too")
    return p
