"""Workflow engine: step order, conditions, --simulate, hooks, build directory, lock."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from mkmedia import workflow as wf
from mkmedia.config import Config, load_config
from mkmedia.host.sysinfo import SystemInfo
from mkmedia.session.lock import RunLock
from rescue_runtime.errors import LockError, StepError
from tests.files import write_file


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> list[wf.Step]:
    """A private step registry so tests do not see (or leak) real steps."""
    steps: list[wf.Step] = []
    monkeypatch.setattr(wf, "_REGISTRY", steps)
    return steps


def make_hook(path: Path, body: str) -> Path:
    return write_file(path, "#!/bin/sh\n" + body + "\n", mode=0o755)


@dataclass
class Project:
    """A configuration directory (its hooks in hooks.d) on a made-up host, with the
    workflow's steps limited to the ones a test registers."""

    config_dir: Path
    system: SystemInfo

    @property
    def hooks(self) -> Path:
        return self.config_dir / "hooks.d"

    def config(self, sets: Sequence[str] = ()) -> Config:
        return load_config(config_dir=self.config_dir, system=self.system, sets=sets)

    def build(
        self, build_dir: Path, *, sets: Sequence[str] = (), keep_build_dir: bool = False
    ) -> None:
        """The build workflow with this configuration and hooks, in build_dir."""
        build_dir.mkdir(exist_ok=True)
        wf.run_workflow(
            wf.WORKFLOWS["build"],
            self.config(sets),
            hooks_dir=self.hooks,
            build_dir=build_dir,
            keep_build_dir=keep_build_dir,
        )


@pytest.fixture
def project(
    registry: list[wf.Step], data_dir: Path, config_dir: Path, fake_system: SystemInfo
) -> Project:
    return Project(config_dir, fake_system)


def test_steps_run_in_stage_then_order(project: Project, tmp_path: Path) -> None:
    calls: list[str] = []

    @wf.step("output", 200)
    def second_output(ctx: wf.Context) -> None:
        calls.append("output-200")

    @wf.step("output", 100)
    def first_output(ctx: wf.Context) -> None:
        calls.append("output-100")

    @wf.step("prep", 500)
    def prep_step(ctx: wf.Context) -> None:
        calls.append("prep-500")

    @wf.step("output", 150, when=lambda c: c.get_str("OUTPUT") == "RAMDISK")
    def ramdisk_only(ctx: wf.Context) -> None:
        calls.append("ramdisk")

    build_dir = tmp_path / "build"
    project.build(build_dir)
    assert calls == ["prep-500", "output-100", "output-200"]
    assert not build_dir.exists(), "the build directory is removed unless kept"

    calls.clear()
    project.build(build_dir, sets=["OUTPUT=RAMDISK"], keep_build_dir=True)
    assert calls == ["prep-500", "output-100", "ramdisk", "output-200"]
    assert build_dir.exists()


def test_simulate_lists_steps_and_hooks_without_running(project: Project) -> None:
    ran = []

    @wf.step("rootfs", 100)
    def assemble(ctx: wf.Context) -> None:
        """Assemble the tree."""
        ran.append(1)

    make_hook(project.hooks / "rootfs/pre/10-note", "exit 0")
    text = wf.describe_plan(wf.WORKFLOWS["build"], project.config(), project.hooks)
    assert "rootfs/100_assemble" in text and "Assemble the tree." in text
    assert "hook   pre  " in text and "10-note" in text
    assert ran == []


def test_hooks_run_in_name_order_with_settings_in_env(project: Project, tmp_path: Path) -> None:
    out = tmp_path / "hooks.out"
    hooks = project.hooks
    make_hook(hooks / "prep/pre/20-second", f'echo "pre2 $OUTPUT $MKMEDIA_STAGE" >> {out}')
    make_hook(hooks / "prep/pre/10-first", f'echo "pre1 $MKMEDIA_WORKFLOW" >> {out}')
    make_hook(hooks / "prep/post/10-after", f'echo "post $PROGS" >> {out}')

    @wf.step("prep", 100)
    def middle(ctx: wf.Context) -> None:
        with open(out, "a") as handle:
            handle.write("step\n")

    project.build(tmp_path / "b", sets=["PROGS=a,b", "OUTPUT=RAMDISK"])
    assert out.read_text().splitlines() == ["pre1 build", "pre2 RAMDISK prep", "step", "post a b"]


def test_failing_hook_stops_the_workflow(project: Project, tmp_path: Path) -> None:
    ran = []
    make_hook(project.hooks / "output/pre/50-check", "echo 'no space on /srv' >&2; exit 3")

    @wf.step("output", 100)
    def write(ctx: wf.Context) -> None:
        ran.append(1)

    with pytest.raises(StepError) as err:
        project.build(tmp_path / "b")
    message = str(err.value)
    assert "pre-output hook" in message and "50-check" in message
    assert "exit status 3" in message and "no space on /srv" in message
    assert ran == []


def test_non_executable_hook_is_an_error(project: Project, tmp_path: Path) -> None:
    hook = make_hook(project.hooks / "prep/pre/10-x", "exit 0")
    hook.chmod(0o644)
    with pytest.raises(StepError, match="not executable"):
        project.build(tmp_path)


def test_lock_refuses_a_second_run(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    with RunLock(path):
        assert f"pid={os.getpid()}\n" in path.read_text()
        with pytest.raises(LockError, match=f"pid {os.getpid()}"):
            RunLock(path).acquire()
    with RunLock(path):  # released: can be taken again
        pass
