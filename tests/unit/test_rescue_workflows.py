"""The rescue workflows on the engine: mountonly and the stub recover, their --simulate and
hooks; both command lines dispatch every subcommand they offer through their table."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from mkmedia import cli as host_cli
from rescue_runtime import cli, rescueconf
from rescue_runtime.recover.activate_state import Entry, State, StateFile, read_breadcrumb
from tests.unit.test_workflow import make_hook


@pytest.fixture
def hooks_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The rescue system's /etc/mkmedia/hooks.d/, here under tmp_path."""
    path = tmp_path / "hooks.d"
    monkeypatch.setattr(rescueconf, "HOOKS_DIR", path)
    monkeypatch.setenv("MKMEDIA_RUN_DIR", str(tmp_path / "run"))
    return path


def test_mountonly_simulate_lists_steps_and_hooks_and_runs_nothing(
    hooks_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hook = make_hook(hooks_dir / "mount/post/10-fsck-note", f"touch {tmp_path / 'ran'}")
    # Run for real, this would fail: there is no saved layout in --dir.
    assert cli.main(["mountonly", "--simulate", "--dir", str(tmp_path / "none")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("Workflow mountonly: ")
    stages = [line.removeprefix("stage ") for line in out if line.startswith("stage ")]
    assert stages == ["verify", "mount", "bind"]
    steps = [line.split()[1] for line in out if line.startswith("  step ")]
    assert steps == [
        "verify/010_load-layout",
        "verify/020_check-tools",
        "verify/030_plan-actions",
        "mount/010_bring-up",
        "bind/010_bind-pseudo-filesystems",
    ]
    assert f"  hook   post {hook}" in out
    assert out.index(f"  hook   post {hook}") > out.index(
        next(line for line in out if "mount/010_bring-up" in line)
    )
    assert not (tmp_path / "ran").exists()


def test_mountonly_simulate_runs_after_the_breadcrumb(
    hooks_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--simulate changes nothing, so the interlock does not stop it."""
    StateFile(tmp_path / "run").begin(State(target="/t"), Entry("md", device="/dev/md0"), "x")
    assert cli.main(["mountonly", "--simulate"]) == 0
    assert "stage verify" in capsys.readouterr().out


def test_mountonly_runs_its_hooks_before_its_steps(
    hooks_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "hook.out"
    make_hook(
        hooks_dir / "verify/pre/10-note",
        f'echo "$MKMEDIA_WORKFLOW $MKMEDIA_STAGE $MKMEDIA_HOOK_PHASE $MKMEDIA_TARGET" > {out}',
    )
    target = tmp_path / "local"
    argv = ["mountonly", "--dir", str(tmp_path / "none"), "--target", str(target)]
    assert cli.main(argv) != 0
    assert "No saved layout" in capsys.readouterr().err
    assert out.read_text() == f"mountonly verify pre {target}\n"
    assert read_breadcrumb(tmp_path / "run") is None


def test_a_failing_rescue_hook_stops_mountonly(
    hooks_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_hook(hooks_dir / "verify/pre/10-stop", "echo 'not today' >&2; exit 4")
    assert cli.main(["mountonly", "--dir", str(tmp_path / "none")]) != 0
    err = capsys.readouterr().err
    assert "pre-verify hook" in err and "not today" in err and "No saved layout" not in err


def simulated(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, list[str]]:
    """--simulate's steps by stage."""
    assert cli.main([*argv, "--simulate"]) == 0
    by_stage: dict[str, list[str]] = {}
    for line in capsys.readouterr().out.splitlines():
        if line.startswith("stage "):
            stage = by_stage.setdefault(line.removeprefix("stage "), [])
        elif line.startswith("  step "):
            stage.append(line.split()[1])
    return by_stage


def test_recover_simulate_lists_its_stages_and_steps(
    hooks_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    steps = simulated(["recover"], capsys)
    assert list(steps) == ["verify", "recreate", "restore", "finalize"]
    assert steps["verify"][0] == "verify/010_check-rescue-system"
    assert "verify/090_confirm" in steps["verify"]
    assert steps["recreate"] == ["recreate/010_run-recreate"]
    assert steps["restore"] == ["restore/010_restore-backup"]
    assert "finalize/090_unmount-target" not in steps["finalize"]  # only unattended
    assert (
        "finalize/090_unmount-target" in simulated(["recover", "--unattended"], capsys)["finalize"]
    )


def test_restoreonly_runs_verify_and_restore_only(
    hooks_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    steps = simulated(["restoreonly"], capsys)
    assert list(steps) == ["verify", "restore"]
    assert steps["restore"] == ["restore/010_restore-backup"]


def subcommands(parser: argparse.ArgumentParser) -> set[str]:
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return set(actions[0].choices)


@pytest.mark.parametrize(
    ("parser", "table"),
    [(cli.build_parser, cli.COMMANDS), (host_cli.build_parser, host_cli.COMMANDS)],
    ids=["rescue", "host"],
)
def test_every_subcommand_has_its_entry_in_the_dispatch_table(
    parser: object, table: dict[str, object]
) -> None:
    assert callable(parser)
    assert subcommands(parser()) == set(table)


def test_recover_applies_the_configured_update_first_and_uses_its_configuration(
    hooks_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """RECOVERY_UPDATE_URL's overlay is applied at recover's start, and the configuration
    recover then works with is the updated one (ReaR read it before the update)."""
    from rescue_runtime.recover import verify, workflow

    conf = tmp_path / "rescue.json"
    conf.write_text(rescueconf.RescueConfig(hostname="old", backup="NONE").to_json())

    def update(config: rescueconf.RescueConfig) -> str:
        assert config.hostname == "old"  # what the media carried
        conf.write_text(rescueconf.RescueConfig(hostname="new", backup="TAPE9").to_json())
        return "overlay applied: etc/mkmedia/rescue.json"

    monkeypatch.setattr(rescueconf, "RESCUE_CONF", conf)
    monkeypatch.setattr(rescueconf.load, "__defaults__", (conf,))
    monkeypatch.setattr(workflow, "apply_configured_update", update)
    monkeypatch.setattr(workflow, "in_rescue_system", lambda: True)
    monkeypatch.setattr(verify, "in_rescue_system", lambda: True)
    monkeypatch.setattr(workflow, "LOG_DIR", tmp_path / "log")
    monkeypatch.setattr(workflow, "OUTCOME", tmp_path / "outcome")
    layout = tmp_path / "layout"
    argv = ["recover", "--unattended", "--dir", str(layout), "--script-dir", str(tmp_path / "rc")]
    layout.mkdir()
    from rescue_runtime.layout import store
    from rescue_runtime.layout.model import Layout

    store.save(Layout(hostname="new"), layout)
    assert cli.main(argv) != 0
    out, err = capsys.readouterr()
    assert "overlay applied" in out
    assert "BACKUP='TAPE9'" in err  # the updated configuration's method, not NONE
