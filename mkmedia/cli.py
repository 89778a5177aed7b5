"""The `mkmedia` command on the host: build, mkbackup, dump, settings, demo, layout, ..."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from mkmedia import __version__
from mkmedia.config import Config, load_config
from mkmedia.host.paths import DEFAULT_CONFIG_DIR
from mkmedia.session.lock import RunLock
from mkmedia.session.log import default_log_path, setup_logging
from mkmedia.settings import SETTINGS
from mkmedia.workflow import (
    WORKFLOWS,
    describe_plan,
    load_steps,
    make_build_dir,
    plan,
    run_workflow,
)
from rescue_runtime.errors import EXIT_CODES, EXIT_INTERRUPTED, EXIT_OK, MkmediaError, UsageError
from rescue_runtime.layout.cli import add_checklayout_parser, add_layout_parser

log = logging.getLogger("mkmedia.cli")

EXIT_HELP = "exit codes:\n" + "\n".join(
    f"  {code:>3}  {text}" for code, text in sorted(EXIT_CODES.items())
)


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("common options")
    group.add_argument(
        "-c",
        "--config-dir",
        type=Path,
        default=DEFAULT_CONFIG_DIR,
        help=f"directory of site.yaml, local.yaml and hooks.d/ (default {DEFAULT_CONFIG_DIR})",
    )
    group.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set a setting last (lists: NAME+=ITEM, NAME-=ITEM, NAME=a,b replaces)",
    )
    group.add_argument("--debug", action="store_true", help="tracebacks and debug output")
    group.add_argument("-v", "--verbose", action="store_true", help="show every command run")
    group.add_argument("--log-file", type=Path, help="log file (default: %(default)s)")
    return common


RECIPE_HELP = "recipe: a YAML file or a built-in name such as examples/minimal (optional)"


def _workflow_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", nargs="?", type=Path, help=RECIPE_HELP)
    parser.add_argument("--simulate", action="store_true", help="list what would run, run nothing")
    parser.add_argument(
        "--keep-build-dir", action="store_true", help="keep the private build directory"
    )
    for setting in SETTINGS:
        if setting.flag:
            parser.add_argument(
                setting.flag,
                dest=f"flag_{setting.name}",
                metavar=setting.name,
                help=f"{setting.help} (sets {setting.name})",
            )


def build_parser() -> argparse.ArgumentParser:
    common = _common_options()
    parser = argparse.ArgumentParser(
        prog="mkmedia",
        description="Build bootable rescue media for this machine and recover it on bare metal.",
        epilog=EXIT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"mkmedia {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for workflow in WORKFLOWS.values():
        aliases = ["mkrescue"] if workflow.name == "build" else []
        p = sub.add_parser(
            workflow.name,
            aliases=aliases,
            help=workflow.help,
            parents=[common],
            epilog=EXIT_HELP,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        _workflow_options(p)
        p.set_defaults(workflow=workflow.name)
    demo = sub.add_parser(
        "demo",
        help="build the default rescue media for this machine and boot it in QEMU",
        parents=[common],
    )
    _workflow_options(demo)
    demo.add_argument(
        "--firmware", choices=("bios", "uefi"), default="bios", help="QEMU firmware to boot with"
    )
    dump = sub.add_parser(
        "dump", help="show the system definition, layers and settings", parents=[common]
    )
    dump.add_argument("recipe", nargs="?", type=Path, help=RECIPE_HELP)
    dump.add_argument("--json", action="store_true", help="machine-readable output")
    add_layout_parser(sub)
    add_checklayout_parser(sub)
    settings = sub.add_parser(
        "settings", help="list every setting with its default and help", parents=[common]
    )
    settings.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def _flag_sets(args: argparse.Namespace) -> list[str]:
    sets = []
    for setting in SETTINGS:
        value = getattr(args, f"flag_{setting.name}", None)
        if value is not None:
            sets.append(f"{setting.name}={value}")
    return sets


def _load(args: argparse.Namespace) -> Config:
    return load_config(
        recipe=getattr(args, "recipe", None),
        config_dir=args.config_dir,
        sets=[*_flag_sets(args), *args.sets],
    )


def cmd_dump(args: argparse.Namespace) -> int:
    from mkmedia.dump import render_dump, render_dump_json

    config = _load(args)
    if args.json:
        print(json.dumps(render_dump_json(config), indent=2, sort_keys=True))
    else:
        print(render_dump(config))
    return EXIT_OK


def cmd_settings(args: argparse.Namespace) -> int:
    if args.json:
        rows = [
            {
                "name": s.name,
                "type": s.kind.value,
                "default": s.default,
                "choices": list(s.offered),
                "merge": s.merge_rule,
                "flag": s.flag,
                "help": s.help,
            }
            for s in SETTINGS
        ]
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    for s in SETTINGS:
        kind = s.kind.value + (f" ({'|'.join(s.offered)})" if s.offered else "")
        flag = f"  [{s.flag}]" if s.flag else ""
        print(
            f"{s.name:<22} {kind}{flag}\n    {s.help}\n"
            f"    default: {s.default!r}; merge: {s.merge_rule}"
        )
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from mkmedia.demo import boot_and_check
    from mkmedia.steps.output import output_directory

    args.workflow = "build"
    # The menu's default boots the local disk (a forgotten disc must not wipe a machine); the
    # demo has no local disk, so it boots the rescue system. Later --set values still win.
    args.sets = ["BOOT_DEFAULT=rescue", "BOOT_TIMEOUT=2", *args.sets]
    cmd_workflow(args)
    if args.simulate:
        return EXIT_OK
    manifest = output_directory(_load(args)) / "manifest.json"
    boot_and_check(manifest, firmware=args.firmware)
    return EXIT_OK


def cmd_workflow(args: argparse.Namespace) -> int:
    load_steps()
    config = _load(args)
    workflow = WORKFLOWS[args.workflow]
    hooks_dir = args.config_dir / "hooks.d"
    plan(workflow, config)  # refuses, before any work, a run that would not do what it says
    if args.simulate:
        print(describe_plan(workflow, config, hooks_dir))
        return EXIT_OK
    with RunLock():
        build_dir = make_build_dir(Path(config.get_str("TMPDIR")))
        log.info("build directory %s", build_dir)
        run_workflow(
            workflow,
            config,
            hooks_dir=hooks_dir,
            build_dir=build_dir,
            keep_build_dir=args.keep_build_dir,
            log_path=args.log_file,
        )
    return EXIT_OK


def dispatch(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.command == "demo":
        return cmd_demo(args)
    if getattr(args, "workflow", None):
        return cmd_workflow(args)
    if args.command == "dump":
        return cmd_dump(args)
    if args.command == "settings":
        return cmd_settings(args)
    if hasattr(args, "func"):  # layout, checklayout: the rescue runtime's own commands
        result: int = args.func(args)
        return result
    parser.print_help()
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    builds = bool(getattr(args, "workflow", None)) or args.command == "demo"
    needs_log = builds and not getattr(args, "simulate", False)
    log_path = args.log_file or (default_log_path() if needs_log else None)
    args.log_file = setup_logging(log_path, verbose=args.verbose, debug=args.debug)
    try:
        return dispatch(args, parser)
    except MkmediaError as exc:
        if args.debug:
            raise
        log.error("%s", exc)
        if args.log_file:
            print(f"mkmedia: the log file {args.log_file} has the details.", file=sys.stderr)
        return exc.exit_code
    except UsageError as exc:  # pragma: no cover - UsageError is an MkmediaError
        log.error("%s", exc)
        return exc.exit_code
    except KeyboardInterrupt:
        print("mkmedia: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    raise SystemExit(main())
