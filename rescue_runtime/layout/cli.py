"""Command line: `mkmedia layout save`, `mkmedia layout show [--json]`, `mkmedia checklayout`.

rescue_runtime/cli.py (the rescue system) and mkmedia/cli.py (the host) wire these in: call
`add_layout_parser(sub)` and `add_checklayout_parser(sub)` with their subparsers object; each
sets `func` on the parsed namespace, which returns the exit status (`args.func(args)`). Before
calling it, each sets `args.configured` from its own configuration (`from_settings()`): the
layout directory, EXCLUDE_RECREATE, AUTOEXCLUDE_PATH and LUKS_HEADER_BACKUP.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from rescue_runtime.errors import EXIT_FAILURE, EXIT_OK
from rescue_runtime.layout.capture import capture
from rescue_runtime.layout.compare import compare
from rescue_runtime.layout.model import Layout
from rescue_runtime.layout.render import render
from rescue_runtime.layout.select import DEFAULT_AUTOEXCLUDE
from rescue_runtime.layout.serial import to_json
from rescue_runtime.layout.store import DEFAULT_DIR, load, save


@dataclass
class Configured:
    """What the configuration says about layout capture: the host's settings (mkmedia/cli.py)
    or the rescue system's rescue.json (rescue_runtime/cli.py) put it on the parsed namespace
    as `configured`; the command line adds to it. Without one: the settings' defaults."""

    layout_dir: str = DEFAULT_DIR  # LAYOUT_DIR
    exclude: list[str] = field(default_factory=list)  # EXCLUDE_RECREATE
    autoexclude: list[str] = field(default_factory=lambda: list(DEFAULT_AUTOEXCLUDE))
    luks_header_backup: bool = False  # LUKS_HEADER_BACKUP


def from_settings(settings: Mapping[str, object]) -> Configured:
    """A Configured from setting values by name (a missing one keeps its default)."""
    conf = Configured()

    def strings(name: str, default: list[str]) -> list[str]:
        value = settings.get(name)
        return [str(v) for v in value] if isinstance(value, list) else default

    if isinstance(settings.get("LAYOUT_DIR"), str) and settings["LAYOUT_DIR"]:
        conf.layout_dir = str(settings["LAYOUT_DIR"])
    conf.exclude = strings("EXCLUDE_RECREATE", conf.exclude)
    conf.autoexclude = strings("AUTOEXCLUDE_PATH", conf.autoexclude)
    conf.luks_header_backup = settings.get("LUKS_HEADER_BACKUP") is True
    return conf


def configured_command(
    settings: Callable[[argparse.Namespace], Mapping[str, object]],
) -> Callable[[argparse.Namespace], int]:
    """layout and checklayout, run with the setting values `settings(args)` gives (the host's
    configuration, or the rescue system's rescue.json)."""

    def run_configured(args: argparse.Namespace) -> int:
        if not hasattr(args, "func"):  # `layout` without save or show
            return EXIT_OK
        args.configured = from_settings(settings(args))
        result: int = args.func(args)
        return result

    return run_configured


def configured(args: argparse.Namespace) -> Configured:
    conf = getattr(args, "configured", None)
    return conf if isinstance(conf, Configured) else Configured()


def layout_dir(args: argparse.Namespace) -> str:
    return str(args.dir) if args.dir else configured(args).layout_dir


def _capture_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dir", help=f"layout directory (default: LAYOUT_DIR, which defaults to {DEFAULT_DIR})"
    )
    parser.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="PATTERN",
        help="leave out a component and what is built on it: a mount point, device, VG, "
        "vg/lv or component id; shell patterns allowed; repeatable; adds to EXCLUDE_RECREATE",
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
    parser.add_argument("--all", action="store_true", help="also keep disks no mount or swap uses")
    parser.add_argument(
        "--root",
        default="/",
        help="the system's root directory: its etc/fstab and the mounts below it (default /)",
    )


def _capture(args: argparse.Namespace, *, keep_headers: bool = False) -> Layout:
    conf = configured(args)
    return capture(
        args.root,
        devices=args.device,
        exclude=[*conf.exclude, *args.exclude],
        exclude_disks=args.exclude_disk,
        everything=args.all,
        autoexclude=conf.autoexclude,
        luks_header_dir=layout_dir(args) if keep_headers else None,
    )


def cmd_save(args: argparse.Namespace) -> int:
    # LUKS header backups only where a layout is saved, never by a check or a show
    keep = args.luks_header_backup or configured(args).luks_header_backup
    layout = _capture(args, keep_headers=keep)
    path = save(layout, layout_dir(args))
    print(f"layout saved to {path}")
    for note in layout.notes:
        print(f"note: {note}")
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    layout = load(layout_dir(args)) if not args.current else _capture(args)
    sys.stdout.write(to_json(layout) if args.json else render(layout))
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    directory = layout_dir(args)
    saved = load(directory)
    # Without selection options, capture on the devices and root the saved layout was
    # captured from (cron runs a bare `mkmedia checklayout` against what `mkmedia build`
    # saved); the excludes are the configuration's now, as the next build's would be.
    given = args.device or args.exclude_disk or args.all or args.root != "/"
    if not given:
        o = saved.options
        args.root, args.device = o.root, o.devices
        args.exclude_disk, args.all = o.exclude_disks, o.everything
    diffs = compare(saved, _capture(args))
    if not diffs:
        if not args.quiet:
            print(f"layout unchanged (compared with {directory})")
        return EXIT_OK
    print(f"the disk layout changed since it was saved in {directory}:")
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
