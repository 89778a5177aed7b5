"""The generic workflow engine (rescue_runtime/workflow.py) over a toy context: order,
conditions, hooks around stages, --simulate, timings, error wrapping."""

from __future__ import annotations

import pkgutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import mkmedia.steps
from mkmedia import workflow as builder
from rescue_runtime import workflow as engine
from rescue_runtime.errors import StepError
from tests.unit.test_workflow import make_hook


@dataclass
class Toy:
    calls: list[str] = field(default_factory=list)


TOY = engine.Workflow("toy", "a toy workflow", ("first", "second", "empty"))


def toy_registry() -> list[engine.Step[Toy, str]]:
    registry: list[engine.Step[Toy, str]] = []

    @engine.register(registry, "second", 20)
    def late(ctx: Toy) -> None:
        """The late one."""
        ctx.calls.append("second-20")

    @engine.register(registry, "second", 10, when=lambda mode: mode == "full")
    def only_when_full(ctx: Toy) -> None:
        ctx.calls.append("second-10")

    @engine.register(registry, "first", 500)
    def _early_step(ctx: Toy) -> None:
        ctx.calls.append("first-500")

    return registry


def test_stages_then_order_and_conditions(tmp_path: Path) -> None:
    registry = toy_registry()
    for mode, expected in (
        ("full", ["first-500", "second-10", "second-20"]),
        ("short", ["first-500", "second-20"]),
    ):
        ctx = Toy()
        timings = engine.run_plan(
            TOY, engine.plan(TOY, registry, mode), ctx, hooks_dir=tmp_path, env={}, say=len
        )
        assert ctx.calls == expected
        assert [label for label, _ in timings] == [
            {"first-500": "first/500_early-step", "second-10": "second/010_only-when-full"}.get(
                c, "second/020_late"
            )
            for c in expected
        ]
        assert all(seconds >= 0 for _, seconds in timings)


def test_a_step_registered_twice_is_refused() -> None:
    registry = toy_registry()
    with pytest.raises(RuntimeError, match="second/020_late registered twice"):

        @engine.register(registry, "second", 20)
        def late(ctx: Toy) -> None:
            pass


def test_hooks_around_each_stage_with_the_workflow_in_env(tmp_path: Path) -> None:
    out = tmp_path / "out"
    hooks = tmp_path / "hooks.d"
    make_hook(hooks / "second/pre/10-a", f'echo "pre $MKMEDIA_WORKFLOW $MKMEDIA_STAGE" >> {out}')
    make_hook(hooks / "second/post/10-b", f'echo "post $TOY_VALUE $MKMEDIA_HOOK_PHASE" >> {out}')
    registry: list[engine.Step[Toy, str]] = []

    @engine.register(registry, "second", 1)
    def write(ctx: Toy) -> None:
        with open(out, "a") as handle:
            handle.write("step\n")

    engine.run_plan(
        TOY,
        engine.plan(TOY, registry, ""),
        Toy(),
        hooks_dir=hooks,
        env={"TOY_VALUE": "42"},
        say=len,
    )
    assert out.read_text().splitlines() == ["pre toy second", "step", "post 42 post"]


def test_simulate_describes_and_runs_nothing(tmp_path: Path) -> None:
    registry = toy_registry()
    make_hook(tmp_path / "first/post/50-note", "exit 0")
    ctx = Toy()
    text = engine.describe_plan(
        TOY, engine.plan(TOY, registry, "short"), tmp_path, no_steps="(nothing here)"
    )
    assert text.splitlines() == [
        "Workflow toy: a toy workflow",
        "stage first",
        f"  step   {'first/500_early-step':<36} ",
        f"  hook   post {tmp_path / 'first/post/50-note'}",
        "stage second",
        f"  step   {'second/020_late':<36} The late one.",
        "stage empty",
        "  (nothing here)",
    ]
    assert ctx.calls == []


def test_an_os_error_in_a_step_names_the_step(tmp_path: Path) -> None:
    registry: list[engine.Step[Toy, str]] = []

    @engine.register(registry, "first", 7)
    def read_missing(ctx: Toy) -> None:
        (tmp_path / "missing").read_text()

    timings: list[tuple[str, float]] = []
    with pytest.raises(StepError, match=r"The step first/007_read-missing failed: .*missing"):
        engine.run_plan(
            TOY,
            engine.plan(TOY, registry, ""),
            Toy(),
            hooks_dir=tmp_path,
            env={},
            say=len,
            timings=timings,
        )
    assert timings == []


def test_a_bad_late_hook_stops_before_the_first_step(tmp_path: Path) -> None:
    registry = toy_registry()
    (tmp_path / "second/post").mkdir(parents=True)
    (tmp_path / "second/post/10-plain").write_text("echo hi\n")
    (tmp_path / "second/post/10-plain").chmod(0o755)
    ctx = Toy()
    with pytest.raises(StepError, match="does not start with a '#!' line"):
        engine.run_plan(
            TOY, engine.plan(TOY, registry, "full"), ctx, hooks_dir=tmp_path, env={}, say=len
        )
    assert ctx.calls == []


def test_the_builder_imports_every_step_module() -> None:
    """load_steps() imports a fixed list; a new module in mkmedia/steps/ must be on it."""
    found = {m.name for m in pkgutil.iter_modules(mkmedia.steps.__path__)}
    assert found == set(builder.STEP_MODULES)


def _failing_registry() -> list[engine.Step[Toy, str]]:
    def boom(ctx: Toy) -> None:
        ctx.calls.append("boom")
        raise RuntimeError("step broke")

    def after(ctx: Toy) -> str:
        ctx.calls.append("after")
        return "fine"

    return [engine.Step("first", 10, "boom", boom), engine.Step("first", 20, "after", after)]


def test_keep_going_reports_a_failure_and_runs_on(tmp_path: Path) -> None:
    lenient = engine.Workflow("lenient", "goes on", ("first",), keep_going=True)
    heard: list[tuple[str, object, str]] = []
    ctx = Toy()
    timings = engine.run_plan(
        lenient,
        engine.plan(lenient, _failing_registry(), "any"),
        ctx,
        hooks_dir=None,
        env={},
        say=len,
        on_step=lambda s, result, error, _seconds: heard.append((s.name, result, repr(error))),
    )
    assert ctx.calls == ["boom", "after"]
    assert heard == [("boom", None, "RuntimeError('step broke')"), ("after", "fine", "None")]
    assert [label for label, _ in timings] == ["first/010_boom", "first/020_after"]


def test_without_keep_going_the_first_failure_stops(tmp_path: Path) -> None:
    strict = engine.Workflow("strict", "stops", ("first",))
    ctx = Toy()
    with pytest.raises(RuntimeError, match="step broke"):
        engine.run_plan(
            strict, engine.plan(strict, _failing_registry(), "any"), ctx, hooks_dir=None, env={}
        )
    assert ctx.calls == ["boom"]
