"""`mkmedia` inside the rescue system: the rescue workflows (standard library only)."""

from __future__ import annotations

import argparse
import logging

from rescue_runtime import __version__
from rescue_runtime.cliguard import Command, Guard, dispatch
from rescue_runtime.cliopts import CommonOptions, default
from rescue_runtime.errors import EXIT_CODES
from rescue_runtime.layout.cli import add_checklayout_parser, add_layout_parser, configured_command
from rescue_runtime.mountonly import add_mountonly_parsers, cmd_mountonly, cmd_umount
from rescue_runtime.recover.activate_state import INTERLOCKED, require_known_disk_state
from rescue_runtime.recover.finalize_cli import add_finalizeonly_parser, cmd_finalizeonly
from rescue_runtime.recover.recreate_cli import add_layoutonly_parser, cmd_layoutonly
from rescue_runtime.recover.workflow import add_recover_parsers, cmd_recover
from rescue_runtime.update.command import add_update_parser, cmd_update


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
    add_recover_parsers(sub, parents=[common])
    add_mountonly_parsers(sub, parents=[common])
    add_finalizeonly_parser(sub, parents=[common])
    add_update_parser(sub, parents=[common])
    return parser


def cmd_dump(args: argparse.Namespace) -> int:
    from rescue_runtime import rescueconf

    config = rescueconf.load()
    print(f"mkmedia rescue system {__version__} for host {config.hostname}")
    print(config.to_json(), end="")
    return 0


def rescue_settings(args: argparse.Namespace) -> dict[str, object]:
    from rescue_runtime import rescueconf

    return rescueconf.load().settings


def interlocked(command: Command) -> Command:
    """After mountonly, the commands that need the disks as found refuse (or warn);
    --simulate and recover --demo touch no disk, so they always run."""

    def guarded(args: argparse.Namespace) -> int:
        if not (getattr(args, "simulate", False) or getattr(args, "demo", None)):
            require_known_disk_state(args.command, getattr(args, "force", False))
        return command(args)

    return guarded


# Every subcommand the parser offers, and what runs it.
COMMANDS: dict[str, Command] = {
    "dump": cmd_dump,
    "layout": configured_command(rescue_settings),
    "checklayout": configured_command(rescue_settings),
    "recover": cmd_recover,
    "restoreonly": cmd_recover,
    "mountonly": cmd_mountonly,
    "umount": cmd_umount,
    "layoutonly": cmd_layoutonly,
    "finalizeonly": cmd_finalizeonly,
    "update": cmd_update,
}
COMMANDS.update({name: interlocked(COMMANDS[name]) for name in INTERLOCKED & set(COMMANDS)})


def main(argv: list[str] | None = None) -> int:
    return Guard().run(lambda guard: _main(guard, argv))


def _main(guard: Guard, argv: list[str] | None) -> int:
    parser = build_parser()
    args = COMMON.merge(parser.parse_args(argv))
    guard.debug = args.debug
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING)
    result = dispatch(COMMANDS, args)
    if result is None:
        parser.print_help()
        return 0
    return result


if __name__ == "__main__":
    raise SystemExit(main())
