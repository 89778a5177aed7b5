"""`mkmedia` inside the rescue system: the rescue workflows (standard library only)."""

from __future__ import annotations

import argparse
import logging
import sys

from rescue_runtime import __version__
from rescue_runtime.errors import EXIT_CODES, MkmediaError


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
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        if args.command == "dump":
            print(f"mkmedia rescue system {__version__}")
            return 0
    except MkmediaError as exc:
        if args.debug:
            raise
        print(f"mkmedia: error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
