"""The one workflow engine, for the builder and the rescue system (standard library only).

A workflow is an ordered list of stages; a stage is an ordered list of small named steps
(ReaR users know the NNN_name.sh order). A step may carry a `when` condition on a subject (the
builder's configuration, the rescue command's options). Running a workflow runs the steps of
each stage with the user's hooks (executables in HOOKS/<stage>/{pre,post}/) before and after
it, times each step and wraps an unexpected OSError into a StepError naming the step;
`describe_plan()` is `--simulate`: what would run, running nothing. A workflow stops at its
first failing step, unless it `keep_going` (the rescue system's /init: a failed step is
reported and the boot goes on, so there is always a shell at the end).

The engine is generic: `C` is the context the steps share, `S` what their conditions look at.
Each side keeps its own registry (a list of steps) and specialises the engine with it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from rescue_runtime.errors import CommandError, MkmediaError, StepError
from rescue_runtime.run import run

log = logging.getLogger("mkmedia.workflow")
hooks_log = logging.getLogger("mkmedia.hooks")

C = TypeVar("C")  # the context the steps share
S = TypeVar("S")  # what the steps' conditions look at

PHASES = ("pre", "post")


@dataclass(frozen=True)
class Step(Generic[C, S]):
    stage: str
    order: int
    name: str
    func: Callable[[C], object]  # what it returns goes to run_plan's on_step (a message)
    when: Callable[[S], bool] | None = None
    doc: str = ""

    @property
    def label(self) -> str:
        return f"{self.stage}/{self.order:03d}_{self.name}"

    def applies(self, subject: S) -> bool:
        return self.when is None or bool(self.when(subject))


@dataclass(frozen=True)
class Workflow:
    name: str
    help: str
    stages: tuple[str, ...]
    keep_going: bool = False  # a failing step goes to on_step and the next step runs


Plan = list[tuple[str, list[Step[C, S]]]]
# on_step(step, result, error, seconds): error is None when the step succeeded
OnStep = Callable[[Step[C, S], object, Exception | None, float], None]


def register(
    registry: list[Step[C, S]], stage: str, order: int, when: Callable[[S], bool] | None = None
) -> Callable[[Callable[[C], None]], Callable[[C], None]]:
    """A decorator adding a function to `registry` as the step `order` of `stage`."""

    def add(func: Callable[[C], None]) -> Callable[[C], None]:
        name = func.__name__.strip("_").replace("_", "-")
        doc = (func.__doc__ or "").strip().splitlines()[0] if func.__doc__ else ""
        new = Step(stage, order, name, func, when, doc)
        if any(s.label == new.label for s in registry):
            raise RuntimeError(f"step {new.label} registered twice")
        registry.append(new)
        return func

    return add


def plan(workflow: Workflow, registry: Sequence[Step[C, S]], subject: S) -> Plan[C, S]:
    """The steps that would run, stage by stage, for this subject."""
    return [
        (
            stage,
            sorted(
                (s for s in registry if s.stage == stage and s.applies(subject)),
                key=lambda s: (s.order, s.name),
            ),
        )
        for stage in workflow.stages
    ]


def describe_plan(
    workflow: Workflow,
    planned: Plan[C, S],
    hooks_dir: Path,
    *,
    no_steps: str = "(no steps for this configuration)",
) -> str:
    """The text of --simulate: each stage with its hooks and steps."""
    lines = [f"Workflow {workflow.name}: {workflow.help}"]
    for stage, steps in planned:
        lines.append(f"stage {stage}")
        for hook in find_hooks(hooks_dir, stage, "pre"):
            lines.append(f"  hook   pre  {hook}")
        for s in steps:
            lines.append(f"  step   {s.label:<36} {s.doc}")
        for hook in find_hooks(hooks_dir, stage, "post"):
            lines.append(f"  hook   post {hook}")
        if not steps:
            lines.append(f"  {no_steps}")
    return "\n".join(lines)


def run_plan(
    workflow: Workflow,
    planned: Plan[C, S],
    ctx: C,
    *,
    hooks_dir: Path | None,
    env: Mapping[str, str],
    cwd: Path | None = None,
    say: Callable[[str], None] = print,
    timings: list[tuple[str, float]] | None = None,
    on_step: OnStep[C, S] | None = None,
) -> list[tuple[str, float]]:
    """Run the planned steps with the hooks around each stage (none when `hooks_dir` is
    None); each step's time is appended to `timings` as it ends (a failed run keeps those of
    the steps before), and returned. `on_step` hears each step's end: its result, or (in a
    `keep_going` workflow) the exception it failed with."""
    timings = [] if timings is None else timings
    env = {**env, "MKMEDIA_WORKFLOW": workflow.name}
    if hooks_dir is not None:
        check_hooks(hooks_dir, workflow.stages)
    for stage, steps in planned:
        if hooks_dir is not None:
            run_hooks(hooks_dir, stage, PHASES[0], env, cwd=cwd)
        for s in steps:
            say(f"{s.label:<36} {s.doc}")
            t0 = time.monotonic()
            result: object = None
            error: Exception | None = None
            try:
                result = s.func(ctx)
            except Exception as exc:
                if not workflow.keep_going:
                    if isinstance(exc, OSError) and not isinstance(exc, MkmediaError):
                        raise StepError(
                            f"The step {s.label} failed: {exc}.",
                            hint="The log file holds the details.",
                        ) from exc
                    raise  # a MkmediaError as it is; a bug with its traceback
                error = exc
            elapsed = time.monotonic() - t0
            timings.append((s.label, elapsed))
            log.debug("step %s took %.2f s", s.label, elapsed)
            if on_step is not None:
                on_step(s, result, error, elapsed)
        if hooks_dir is not None:
            run_hooks(hooks_dir, stage, PHASES[1], env, cwd=cwd)
    return timings


# -- hooks -------------------------------------------------------------------------------------
# What exec() runs: a script naming its interpreter, or an ELF program.
_RUNNABLE_MAGIC = (b"#!", b"\x7fELF")


def _check_runnable(path: Path) -> None:
    """A hook must be something exec() can start; a script without `#!` fails with ENOEXEC."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
    except OSError as exc:
        raise StepError(
            f"The hook {path} cannot be read ({exc.strerror}).",
            hint="Check its permissions, or rename it to end in .disabled.",
        ) from exc
    if not head.startswith(_RUNNABLE_MAGIC):
        raise StepError(
            f"The hook {path} is executable but does not start with a '#!' line naming its "
            "interpreter, so it cannot be run (exec answers: Exec format error).",
            hint="Add a first line such as #!/bin/sh, or rename it to end in .disabled.",
        )


def find_hooks(hooks_dir: Path, stage: str, phase: str) -> list[Path]:
    """The hooks of one stage and phase, in name order. Non-executable files are an error:
    a hook the admin wrote but forgot to chmod must not be skipped silently."""
    directory = hooks_dir / stage / phase
    if not directory.is_dir():
        return []
    try:
        entries = sorted(directory.iterdir(), key=lambda p: p.name)
    except OSError as exc:
        raise StepError(
            f"The hook directory {directory} cannot be read ({exc.strerror}).",
            hint="Fix its permissions so that mkmedia can list it.",
        ) from exc
    hooks = []
    for path in entries:
        if path.name.startswith(".") or path.name.endswith(("~", ".bak", ".disabled")):
            continue
        if not path.is_file():
            continue
        if not os.access(path, os.X_OK):
            raise StepError(
                f"The hook {path} is not executable.",
                hint=f"Make it executable (chmod +x {path}) or rename it to end in .disabled.",
            )
        _check_runnable(path)
        hooks.append(path)
    return hooks


def check_hooks(hooks_dir: Path, stages: Sequence[str]) -> None:
    """Look at every hook of these stages before the first one runs (a bad late hook would
    otherwise stop the run after the long stages)."""
    for stage in stages:
        for phase in PHASES:
            find_hooks(hooks_dir, stage, phase)


def run_hooks(
    hooks_dir: Path, stage: str, phase: str, env: Mapping[str, str], *, cwd: Path | None = None
) -> list[Path]:
    ran = []
    for hook in find_hooks(hooks_dir, stage, phase):
        hooks_log.info("  hook %s/%s/%s", stage, phase, hook.name)
        hook_env = dict(env)
        hook_env.update({"MKMEDIA_STAGE": stage, "MKMEDIA_HOOK_PHASE": phase})
        try:
            run([str(hook)], env=hook_env, cwd=cwd, what=f"running the {phase}-{stage} hook")
        except CommandError as exc:
            raise StepError(
                f"The {phase}-{stage} hook {hook} failed, so the workflow stopped. {exc.message}",
                hint="Fix or remove the hook and run mkmedia again.",
            ) from exc
        ran.append(hook)
    return ran
