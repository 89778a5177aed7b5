"""`mkmedia` inside the rescue system: the rescue workflows (standard library only)."""

from __future__ import annotations

import argparse
import logging
import sys

from rescue_runtime import __version__, features
from rescue_runtime.cliopts import CommonOptions, default
from rescue_runtime.errors import EXIT_CODES, MkmediaError
from rescue_runtime.layout.cli import add_checklayout_parser, add_layout_parser, from_settings
from rescue_runtime.mountonly import add_mountonly_parsers
from rescue_runtime.recover.activate_state import INTERLOCKED, require_known_disk_state
from rescue_runtime.recover.recreate_cli import add_layoutonly_parser
from rescue_runtime.signals import exit_code, stopped_by, terminate_unwinds


def _define_common(group: argparse._ArgumentGroup, depth: int) -> None:
    group.add_argument(
        "--debug",
        action="store_true",
        default=default(False, depth),
        help="show tracebacks and debug output",
    )


COMMON = CommonOptions(_define_common)


def build_parser() -> argparse.ArgumentParser:
    codes = "\n".join(f"  {code:>3}  {text}" for code, text in sorted(EXIT_CODES.items()))
    common = COMMON.parent(1)  # each subcommand's copy: sets only what is given after it
    parser = argparse.ArgumentParser(
        prog="mkmedia",
        description="mkmedia rescue system: recover this machine from its backup.",
        epilog=f"exit codes:\n{codes}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[COMMON.parent(0)],
    )
    parser.add_argument("--version", action="version", version=f"mkmedia {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser(
        "dump", help="show the rescue system's definition and settings", parents=[common]
    )
    add_layout_parser(sub, parents=[common])
    add_checklayout_parser(sub, parents=[common])
    add_layoutonly_parser(sub, parents=[common])
    recover_help = "recreate the disk layout, restore, reinstall boot"
    if not features.RECOVER.ready:
        recover_help += " (not in this version yet)"
    recover = sub.add_parser("recover", help=recover_help, parents=[common])
    recover.add_argument("--unattended", action="store_true", help="ask no questions")
    recover.add_argument(
        "--force", action="store_true", help="run even after mountonly changed the disks (warns)"
    )
    add_mountonly_parsers(sub, parents=[common])
    return parser


def cmd_dump() -> int:
    from rescue_runtime import rescueconf

    config = rescueconf.load()
    print(f"mkmedia rescue system {__version__} for host {config.hostname}")
    print(config.to_json(), end="")
    return 0


def cmd_recover(unattended: bool) -> int:
    """Entry point of the recover workflow (verify, recreate, restore, finalize)."""
    mode = "unattended" if unattended else "interactive"
    raise MkmediaError(
        f"{features.RECOVER.missing} (asked for an {mode} recovery); no disk was touched.",
        hint="Use the shell to repair the machine by hand.",
    )


def main(argv: list[str] | None = None) -> int:
    with terminate_unwinds():  # SIGTERM unwinds like Ctrl-C: temporary files are removed
        try:
            return _main(argv)
        except KeyboardInterrupt as exc:
            print(f"mkmedia: {stopped_by(exc)}", file=sys.stderr)
            return exit_code(exc)


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    args = COMMON.merge(parser.parse_args(argv))
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        # After mountonly, the commands that need the disks as found refuse (or warn).
        if args.command in INTERLOCKED:
            require_known_disk_state(args.command, getattr(args, "force", False))
        if args.command == "dump":
            return cmd_dump()
        if args.command == "recover":
            return cmd_recover(args.unattended)
        if hasattr(args, "func"):
            if args.command in ("layout", "checklayout"):  # from the rescue configuration
                from rescue_runtime import rescueconf

                args.configured = from_settings(rescueconf.load().settings)
            result: int = args.func(args)
            return result
    except MkmediaError as exc:
        if args.debug:
            raise
        print(f"mkmedia: error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
