"""Command line: `mkmedia layout save`, `mkmedia layout show [--json]`, `mkmedia checklayout`.

rescue_runtime/cli.py wires these in: call `add_layout_parser(sub)` and
`add_checklayout_parser(sub)` with its subparsers object; each sets `func` on the parsed
namespace, which returns the exit status (`args.func(args)`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from rescue_runtime.errors import EXIT_FAILURE, EXIT_OK
from rescue_runtime.layout.capture import capture
from rescue_runtime.layout.compare import compare
from rescue_runtime.layout.model import Layout
from rescue_runtime.layout.render import render
from rescue_runtime.layout.serial import to_json
from rescue_runtime.layout.store import DEFAULT_DIR, load, save


def _capture_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dir", default=DEFAULT_DIR, help=f"layout directory (default {DEFAULT_DIR})"
    )
    parser.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="PATTERN",
        help="leave out a component and what is built on it: a mount point, device, VG, "
        "vg/lv or component id; shell patterns allowed; repeatable",
    )
    parser.add_argument(
        "--exclude-disk",
        action="append",
        default=[],
        metavar="DISK",
        help="a disk that is never part of the layout (backup or rescue media); repeatable",
    )
    parser.add_argument(
        "--device",
        action="append",
        default=[],
        metavar="DEV",
        help="scan only these block devices (default: all)",
    )
    parser.add_argument(
        "--all", action="store_true", help="also keep devices no mount or swap uses"
    )
    parser.add_argument(
        "--root",
        default="/",
        help="the system's root directory: its etc/fstab and the mounts below it (default /)",
    )


def _capture(args: argparse.Namespace) -> Layout:
    return capture(
        args.root,
        devices=args.device,
        exclude=args.exclude,
        exclude_disks=args.exclude_disk,
        everything=args.all,
        luks_header_dir=args.dir if getattr(args, "luks_header_backup", False) else None,
    )


def cmd_save(args: argparse.Namespace) -> int:
    layout = _capture(args)
    path = save(layout, args.dir)
    print(f"layout saved to {path}")
    for note in layout.notes:
        print(f"note: {note}")
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    layout = load(args.dir) if not args.current else _capture(args)
    sys.stdout.write(to_json(layout) if args.json else render(layout))
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    saved = load(args.dir)
    # Without selection options, capture the way the saved layout was captured (cron runs
    # a bare `mkmedia checklayout` against what `mkmedia build` saved with the recipe's).
    given = args.device or args.exclude or args.exclude_disk or args.all or args.root != "/"
    if not given:
        o = saved.options
        args.root, args.device, args.exclude = o.root, o.devices, o.exclude
        args.exclude_disk, args.all = o.exclude_disks, o.everything
    diffs = compare(saved, _capture(args))
    if not diffs:
        if not args.quiet:
            print(f"layout unchanged (compared with {args.dir})")
        return EXIT_OK
    print(f"the disk layout changed since it was saved in {args.dir}:")
    for diff in diffs:
        print(f"  {diff}")
    return EXIT_FAILURE


def add_layout_parser(
    subparsers: argparse._SubParsersAction, parents: Sequence[argparse.ArgumentParser] = ()
) -> argparse.ArgumentParser:
    """`parents`: the caller's common options (the host's -c/--set), on each action."""
    layout = subparsers.add_parser("layout", help="capture, save and show the disk layout")
    sub = layout.add_subparsers(dest="layout_command", metavar="ACTION", required=True)
    p_save = sub.add_parser("save", help="capture the layout and save it", parents=parents)
    _capture_options(p_save)
    p_save.add_argument(
        "--luks-header-backup",
        action="store_true",
        help="also keep each LUKS header's backup in the layout directory (off by default; "
        "the files hold no passphrase but let anyone with one open the volume)",
    )
    p_save.set_defaults(func=cmd_save)
    p_show = sub.add_parser("show", help="show the saved layout", parents=parents)
    _capture_options(p_show)
    p_show.add_argument("--json", action="store_true", help="print the JSON document")
    p_show.add_argument(
        "--current", action="store_true", help="capture now instead of reading the saved one"
    )
    p_show.set_defaults(func=cmd_show)
    return layout


def add_checklayout_parser(
    subparsers: argparse._SubParsersAction, parents: Sequence[argparse.ArgumentParser] = ()
) -> argparse.ArgumentParser:
    check = subparsers.add_parser(
        "checklayout",
        help="exit 1 when the disk layout changed since it was saved (0 when not)",
        parents=parents,
    )
    _capture_options(check)
    check.add_argument("-q", "--quiet", action="store_true", help="print only differences")
    check.set_defaults(func=cmd_check)
    return check


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (python -m rescue_runtime.layout.cli) until the main CLI wires it."""
    from rescue_runtime.errors import MkmediaError

    parser = argparse.ArgumentParser(prog="mkmedia")
    sub = parser.add_subparsers(dest="command", required=True)
    add_layout_parser(sub)
    add_checklayout_parser(sub)
    args = parser.parse_args(argv)
    try:
        result: int = args.func(args)
        return result
    except MkmediaError as exc:
        print(f"mkmedia: error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
