"""What the recover steps share, and their registry (the stages are in workflow.py).

The verify stage fills the context; nothing after it is looked up again, so a later stage
works with exactly what verify checked.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rescue_runtime import rescueconf
from rescue_runtime import workflow as engine
from rescue_runtime.layout.model import Layout
from rescue_runtime.recover.ask import Asker
from rescue_runtime.recover.finalize_network import NicMapping
from rescue_runtime.recover.recreate import RecreatePlan


@dataclass
class RecoverOptions:
    layout_dir: str
    target: str
    script_dir: str
    unattended: bool = False
    force: bool = False  # run outside a rescue system
    restart: bool = False  # forget finished components and restore again


@dataclass
class RecoverContext:
    options: RecoverOptions
    config: rescueconf.RescueConfig
    ask: Asker
    stages: tuple[str, ...]  # the stages this command runs (recover: all of them)
    log_file: Path | None = None
    # filled by verify:
    layout: Layout = field(default_factory=Layout)
    layout_sha256: str = ""
    backup_dir: Path | None = None  # where backup-manifest.json is
    manifest: dict[str, object] = field(default_factory=dict)
    protected: set[str] = field(default_factory=set)  # disks recover never writes
    mapped: dict[str, str] = field(default_factory=dict)  # old device path -> new one
    nics: NicMapping = field(default_factory=NicMapping)  # old MAC -> new one
    plan: RecreatePlan | None = None
    skipped_mounts: list[str] = field(default_factory=list)  # left out: not restored
    script: Path | None = None
    notes: list[str] = field(default_factory=list)
    # what stays open for the run (the mounted backup medium)
    resources: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def recreate_plan(self) -> RecreatePlan:
        if self.plan is None or self.script is None:  # a step order error, not the user's
            raise RuntimeError("recover: no recreate plan before verify/plan-recreate")
        return self.plan

    def state_dir(self) -> Path:
        return Path(self.options.script_dir) / f"state-{self.recreate_plan().layout_digest}"

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(f"mkmedia recover: {text}", flush=True)


@dataclass(frozen=True)
class Subject:
    """What the steps' conditions look at."""

    unattended: bool


STEPS: list[engine.Step[RecoverContext, Subject]] = []

StepFunc = Callable[[RecoverContext], None]


def step(
    stage: str, order: int, when: Callable[[Subject], bool] | None = None
) -> Callable[[StepFunc], StepFunc]:
    return engine.register(STEPS, stage, order, when)
