"""`mkmedia` inside the rescue system: the rescue workflows (standard library only)."""

from __future__ import annotations

import argparse
import logging
import sys

from rescue_runtime import __version__
from rescue_runtime.errors import EXIT_CODES, MkmediaError
from rescue_runtime.layout.cli import add_checklayout_parser, add_layout_parser
from rescue_runtime.recover.recreate_cli import add_layoutonly_parser


def build_parser() -> argparse.ArgumentParser:
    codes = "\n".join(f"  {code:>3}  {text}" for code, text in sorted(EXIT_CODES.items()))
    parser = argparse.ArgumentParser(
        prog="mkmedia",
        description="mkmedia rescue system: recover this machine from its backup.",
        epilog=f"exit codes:\n{codes}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"mkmedia {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug output")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("dump", help="show the rescue system's definition and settings")
    add_layout_parser(sub)
    add_checklayout_parser(sub)
    add_layoutonly_parser(sub)
    recover = sub.add_parser("recover", help="recreate the disk layout, restore, reinstall boot")
    recover.add_argument("--unattended", action="store_true", help="ask no questions")
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
    print(f"mkmedia recover: starting ({mode})", flush=True)
    raise MkmediaError(
        "The recover workflow is not part of this version of mkmedia yet; no disk was touched.",
        hint="Use the shell to repair the machine by hand.",
    )


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        if args.command == "dump":
            return cmd_dump()
        if args.command == "recover":
            return cmd_recover(args.unattended)
        if hasattr(args, "func"):
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
