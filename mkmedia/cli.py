"""The `mkmedia` command on the host: build, mkbackup, dump, settings, demo, layout, ..."""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from pathlib import Path

from mkmedia import __version__
from mkmedia.config import Config, load_config
from mkmedia.host.paths import DEFAULT_CONFIG_DIR
from mkmedia.session.lock import RunLock
from mkmedia.session.log import default_log_path, setup_logging
from mkmedia.settings import SETTINGS
from mkmedia.update.command import add_update_parser
from mkmedia.workflow import (
    WORKFLOWS,
    describe_plan,
    load_steps,
    make_build_dir,
    plan,
    reap_build_dirs,
    run_workflow,
)
from rescue_runtime.cliguard import Command, Guard, dispatch
from rescue_runtime.cliopts import CommonOptions, default, dest
from rescue_runtime.errors import EXIT_CODES, EXIT_OK, UsageError
from rescue_runtime.layout.cli import (
    add_checklayout_parser,
    add_layout_parser,
    configured_command,
)

log = logging.getLogger("mkmedia.cli")

EXIT_HELP = "exit codes:\n" + "\n".join(
    f"  {code:>3}  {text}" for code, text in sorted(EXIT_CODES.items())
)


def _define_common(group: argparse._ArgumentGroup, depth: int) -> None:
    group.add_argument(
        "-c",
        "--config-dir",
        type=Path,
        default=default(DEFAULT_CONFIG_DIR, depth),
        help=f"directory of site.yaml, local.yaml and hooks.d/ (default {DEFAULT_CONFIG_DIR})",
    )
    group.add_argument(
        "--set",
        dest=dest("sets", depth),
        action="append",
        default=default([], depth),
        metavar="NAME=VALUE",
        help="set a setting last (lists: NAME+=ITEM, NAME-=ITEM, NAME=a,b replaces); "
        "repeatable, before or after the command, applied left to right",
    )
    switches = (
        (("--debug",), "tracebacks and debug output"),
        (("-v", "--verbose"), "show every command run"),
    )
    for flags, text in switches:
        group.add_argument(*flags, action="store_true", default=default(False, depth), help=text)
    group.add_argument(
        "--log-file",
        type=Path,
        default=default(None, depth),
        help="log file (default for builds: /var/log/mkmedia/mkmedia-HOST.log as root, "
        "else under ~/.local/state/mkmedia)",
    )


COMMON = CommonOptions(_define_common, appended=("sets",))


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
    common = COMMON.parent(1)  # each subcommand's copy: sets only what is given after it
    parser = argparse.ArgumentParser(
        prog="mkmedia",
        description="Build bootable rescue media for this machine and recover it on bare metal.",
        epilog=EXIT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[COMMON.parent(0)],
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
    recover = sub.add_parser(
        "recover",
        help="inside the rescue system: recover this machine; here: --demo DIR only",
        parents=[common],
    )
    recover.add_argument("recipe", nargs="?", type=Path, help="recipe YAML file (optional)")
    recover.add_argument(
        "--demo",
        type=Path,
        metavar="DIR",
        help="restore the configured backup into DIR (new or empty) and touch no disk",
    )
    dump = sub.add_parser(
        "dump", help="show the system definition, layers and settings", parents=[common]
    )
    dump.add_argument("recipe", nargs="?", type=Path, help=RECIPE_HELP)
    dump.add_argument("--json", action="store_true", help="machine-readable output")
    add_layout_parser(sub, parents=[common])
    add_checklayout_parser(sub, parents=[common])
    add_update_parser(sub, parents=[common], recipe_help=RECIPE_HELP)
    settings = sub.add_parser(
        "settings", help="list every setting with its default and help", parents=[common]
    )
    settings.add_argument("--json", action="store_true", help="machine-readable output")
    _format_parser(sub, common)
    return parser


def _format_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    fmt = sub.add_parser(
        "format",
        help="prepare a USB stick or image file for OUTPUT=USB (erases it)",
        parents=[common],
    )
    fmt.add_argument("target", type=Path, metavar="DEVICE|IMAGE", help="/dev/sdX or a file")
    modes = fmt.add_mutually_exclusive_group()
    for mode in ("efi", "bios", "both"):
        modes.add_argument(
            f"--{mode}",
            dest="mode",
            action="store_const",
            const=mode,
            help={"efi": "UEFI machines only", "bios": "BIOS machines only"}.get(
                mode, "UEFI and BIOS machines (default)"
            ),
        )
    fmt.set_defaults(mode="both")
    fmt.add_argument("--yes", action="store_true", help="do not ask (the checks still run)")
    fmt.add_argument(
        "--force",
        action="store_true",
        help="write a disk of the saved layout or a non-removable disk",
    )
    fmt.add_argument("--size", help="create or grow the image file to this size (512M, 2G)")
    fmt.add_argument(
        "--tape",
        action="store_true",
        help="DEVICE|IMAGE is a tape drive (/dev/nstN) or tape image (.tap): write mkmedia's "
        "blank label for OUTPUT=OBDR or BACKUP_URL=tape://",
    )
    tape = sub.add_parser(
        "tape", help="tapes of OUTPUT=OBDR and BACKUP_URL=tape://", parents=[common]
    )
    tape_sub = tape.add_subparsers(dest="tape_command", metavar="ACTION", required=True)
    verify = tape_sub.add_parser(
        "verify",
        help="read the whole tape: header, ISO (El Torito, checksum), backup stream (checksum)",
        parents=[common],
    )
    verify.add_argument("target", metavar="DEVICE|IMAGE", help="/dev/nstN or a .tap file")
    verify.add_argument(
        "--manifest",
        type=Path,
        help="the output manifest.json whose ISO the tape must carry (default: the one in "
        "the output directory, when there is one)",
    )


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


def cmd_recover(args: argparse.Namespace) -> int:
    if args.demo is None:
        raise UsageError(
            "mkmedia recover runs inside the rescue system: boot this machine from its rescue "
            "media and run it there.",
            hint="On this host, `mkmedia recover --demo DIR` restores the backup into DIR to "
            "prove it can be restored.",
        )
    from mkmedia.recoverdemo import demo_restore
    from mkmedia.session.log import say
    from mkmedia.steps.backup import ProgressBar

    bar = ProgressBar("restore")
    try:
        result = demo_restore(_load(args), args.demo, bar)
    finally:
        bar.close()
    say(f"Restored {result['files']} files into {args.demo}; no disk was touched.")
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
        tmpdir = Path(config.get_str("TMPDIR"))
        reap_build_dirs(tmpdir)
        build_dir = make_build_dir(tmpdir)
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


def cmd_format(args: argparse.Namespace) -> int:
    if args.tape:
        return _format_tape(args)
    from mkmedia.steps.output import wants_secure_boot
    from mkmedia.usb.format import format_stick, parse_size
    from rescue_runtime.errors import MissingError
    from rescue_runtime.layout import store

    config = _load(args)
    layout_dir = config.get_str("LAYOUT_DIR")
    try:
        layout = store.load(layout_dir)
    except MissingError:
        layout = None
        log.warning("no saved layout in %s: only the running system is checked", layout_dir)
    with RunLock():
        plan = format_stick(
            args.target,
            mode=args.mode,
            secure_boot=wants_secure_boot(config),
            layout=layout,
            force=args.force,
            yes=args.yes,
            size=parse_size(args.size) if args.size else None,
        )
    parts = ", ".join(f"{p.number}: {p.role} {p.size // 2**20} MiB" for p in plan.parts)
    print(f"{args.target} is ready for OUTPUT=USB ({parts}).")
    return EXIT_OK


def _format_tape(args: argparse.Namespace) -> int:
    from mkmedia.session.epoch import resolve_epoch, source_date_epoch
    from mkmedia.tapecmd import format_tape

    if args.size or args.mode != "both":
        raise UsageError(
            "--size, --efi and --bios are for USB sticks; a tape takes none of them.",
            hint="Run `mkmedia format --tape DEVICE|IMAGE` alone.",
        )
    with RunLock():
        format_tape(
            str(args.target),
            force=args.force,
            yes=args.yes,
            epoch=resolve_epoch(source_date_epoch()),
        )
    print(f"{args.target} carries mkmedia's blank label: ready for OUTPUT=OBDR or tape://.")
    return EXIT_OK


def cmd_tape(args: argparse.Namespace) -> int:
    from mkmedia.steps.output import output_directory
    from mkmedia.tapecmd import verify_tape

    manifest = args.manifest
    if manifest is None:
        manifest = output_directory(_load(args)) / "manifest.json"
    elif not manifest.is_file():
        raise UsageError(f"The manifest {manifest} (--manifest) does not exist.")
    for line in verify_tape(args.target, manifest):
        print(line)
    print(f"{args.target}: the tape is complete and intact.")
    return EXIT_OK


def cmd_update(args: argparse.Namespace) -> int:
    if args.update_command != "pack":
        raise UsageError(
            "On this host, mkmedia update only packs overlays: mkmedia update pack -o FILE.",
            hint="`mkmedia update SOURCE` applies one inside the rescue system.",
        )
    from mkmedia.session.epoch import source_date_epoch
    from mkmedia.session.log import say
    from mkmedia.update.command import pack_for_host

    packed = pack_for_host(
        _load(args),
        args.output,
        host=args.host,
        include_runtime=args.include_runtime,
        sign_key=args.sign_key,
        epoch=source_date_epoch(),
    )
    signed = "signed" if packed.signed else "not signed"
    say(f"Wrote the overlay {packed.path} for host {packed.host}: {packed.files} files, {signed}.")
    return EXIT_OK


def _settings(args: argparse.Namespace) -> dict[str, object]:
    return dict(_load(args).values)


# Every subcommand the parser offers, and what runs it (the workflows: cmd_workflow).
COMMANDS: dict[str, Command] = {
    "demo": cmd_demo,
    "dump": cmd_dump,
    "recover": cmd_recover,
    "settings": cmd_settings,
    "format": cmd_format,
    "tape": cmd_tape,
    "update": cmd_update,
    # LAYOUT_DIR, EXCLUDE_RECREATE, AUTOEXCLUDE_PATH: as `build` saves the layout
    "layout": configured_command(_settings),
    "checklayout": configured_command(_settings),
    **dict.fromkeys(WORKFLOWS, cmd_workflow),
    "mkrescue": cmd_workflow,  # build's alias
}


def main(argv: Sequence[str] | None = None) -> int:
    # SIGTERM unwinds like Ctrl-C: build directory and lock go
    return Guard(report=lambda text: log.error("%s", text)).run(lambda guard: _main(guard, argv))


def _main(guard: Guard, argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = COMMON.merge(parser.parse_args(argv))
    builds = bool(getattr(args, "workflow", None)) or args.command == "demo"
    needs_log = builds and not getattr(args, "simulate", False)
    log_path = args.log_file or (default_log_path() if needs_log else None)
    args.log_file = setup_logging(log_path, verbose=args.verbose, debug=args.debug)
    guard.debug, guard.log_file = args.debug, args.log_file
    result = dispatch(COMMANDS, args)
    if result is None:
        parser.print_help()
        return EXIT_OK
    return result


if __name__ == "__main__":
    raise SystemExit(main())
