"""Common options count wherever they stand: before the subcommand, after it, or both."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from mkmedia import cli as host_cli
from mkmedia.host.paths import DEFAULT_CONFIG_DIR
from rescue_runtime import cli as rescue_cli
from rescue_runtime.errors import EXIT_CONFIG
from tests.unit.test_cli import mkmedia

# Every host subcommand with the arguments it needs to parse (layout has two levels).
HOST_COMMANDS = [
    ["build"],
    ["mkrescue"],
    ["mkbackup"],
    ["mkbackuponly"],
    ["demo"],
    ["dump"],
    ["settings"],
    ["checklayout"],
    ["layout", "save"],
    ["layout", "show"],
]


def host(argv: list[str]) -> argparse.Namespace:
    return host_cli.COMMON.merge(host_cli.build_parser().parse_args(argv))


def rescue(argv: list[str]) -> argparse.Namespace:
    return rescue_cli.COMMON.merge(rescue_cli.build_parser().parse_args(argv))


def placements(command: list[str], options: list[str]) -> list[list[str]]:
    """The options before the command and after it (after the action of `layout ACTION`)."""
    return [options + command, command + options]


def test_between_layout_and_its_action_is_refused_not_dropped() -> None:
    for argv in (["layout", "--set", "A=1", "save"], ["layout", "--debug", "show"]):
        with pytest.raises(SystemExit) as host_exit:
            host(argv)
        assert host_exit.value.code == 2
    with pytest.raises(SystemExit) as rescue_exit:
        rescue(["layout", "--debug", "show"])
    assert rescue_exit.value.code == 2


@pytest.mark.parametrize("command", HOST_COMMANDS, ids=" ".join)
def test_each_host_option_counts_before_and_after(command: list[str]) -> None:
    options = ["-c", "/srv/conf", "--set", "OUTPUT=USB", "--debug", "-v", "--log-file", "/x.log"]
    for argv in placements(command, options):
        args = host(argv)
        assert args.config_dir == Path("/srv/conf"), argv
        assert args.sets == ["OUTPUT=USB"], argv
        assert args.debug is True and args.verbose is True, argv
        assert args.log_file == Path("/x.log"), argv


@pytest.mark.parametrize("command", HOST_COMMANDS, ids=" ".join)
def test_host_defaults_when_not_given(command: list[str]) -> None:
    args = host(command)
    assert args.config_dir == DEFAULT_CONFIG_DIR
    assert args.sets == []
    assert args.debug is False and args.verbose is False and args.log_file is None
    assert not [name for name in vars(args) if name.startswith("sets__")]


def test_set_before_and_after_appends_in_order() -> None:
    args = host(["--set", "PROGS+=a", "layout", "save", "--set", "PROGS+=b", "--set", "PROGS+=c"])
    assert args.sets == ["PROGS+=a", "PROGS+=b", "PROGS+=c"]
    args = host(["--set", "A=1", "--set", "B=2", "build", "--set", "A=3"])
    assert args.sets == ["A=1", "B=2", "A=3"]


def test_later_single_value_options_win() -> None:
    args = host(["-c", "/first", "dump", "-c", "/second"])
    assert args.config_dir == Path("/second")
    args = host(["--log-file", "/a.log", "build", "--log-file", "/b.log"])
    assert args.log_file == Path("/b.log")


@pytest.mark.parametrize(
    "command", [["dump"], ["recover"], ["checklayout"], ["layout", "save"], ["layout", "show"]]
)
def test_rescue_debug_counts_before_and_after(command: list[str]) -> None:
    for argv in placements(command, ["--debug"]):
        assert rescue(argv).debug is True, argv
    assert rescue(command).debug is False


def test_set_before_the_subcommand_is_validated(tmp_path: Path, config_dir: Path) -> None:
    result = mkmedia("--set", "OUTPUT=BOGUS", "dump", "-c", str(config_dir), tmp=tmp_path)
    assert result.returncode == EXIT_CONFIG, result.stdout
    assert "'BOGUS' is not a valid value for OUTPUT" in result.stderr


def test_config_dir_and_log_file_before_the_subcommand(tmp_path: Path, config_dir: Path) -> None:
    (config_dir / "site.yaml").write_text("BOOT_TIMEOUT: 7\n")
    hook = config_dir / "hooks.d/prep/pre/10-note"
    hook.parent.mkdir(parents=True)
    hook.write_text("#!/bin/sh\nexit 0\n")
    hook.chmod(0o755)
    log_file = tmp_path / "before.log"
    plan = mkmedia(
        "-c", str(config_dir), "--log-file", str(log_file), "build", "--simulate", tmp=tmp_path
    )
    assert plan.returncode == 0, plan.stderr
    assert str(hook) in plan.stdout, "the hooks of the -c given before the command are planned"
    assert log_file.is_file()
    dump = mkmedia("-c", str(config_dir), "dump", tmp=tmp_path)
    assert "BOOT_TIMEOUT           7" in dump.stdout


def test_debug_before_the_subcommand_shows_the_traceback(tmp_path: Path, config_dir: Path) -> None:
    (config_dir / "local.yaml").write_text("PROGZ: [x]\n")
    result = mkmedia("--debug", "build", "--simulate", "-c", str(config_dir), tmp=tmp_path)
    assert "Traceback" in result.stderr


def test_verbose_before_the_subcommand_shows_module_lines(tmp_path: Path, config_dir: Path) -> None:
    quiet = mkmedia("dump", "-c", str(config_dir), tmp=tmp_path)
    verbose = mkmedia("-v", "dump", "-c", str(config_dir), tmp=tmp_path)
    assert quiet.returncode == verbose.returncode == 0, verbose.stderr
    assert "kernel " not in quiet.stderr
    assert "chosen" in verbose.stderr, "-v before the command turns on the detail lines"
