"""Workflows are ordered stages; a stage is an ordered list of small named steps.

Steps register themselves with `@step(stage, order)` (ReaR users know the NNN_name.sh order) and
may carry a `when` condition on the configuration (backup method, output kind, OS family). A
workflow runs the steps of its stages, with the user's hooks before and after each stage.
"""

from __future__ import annotations

import importlib
import logging
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from mkmedia.config import Config
from mkmedia.kernel.choice import Kernel
from mkmedia.pyembed.embed import EmbeddedPython
from mkmedia.session.artifacts import Artifact
from mkmedia.session.epoch import source_date_epoch
from mkmedia.session.lock import Owner, read_record
from mkmedia.session.log import say
from rescue_runtime import atomic
from rescue_runtime import workflow as engine
from rescue_runtime.backup.sources import BackupPlan
from rescue_runtime.backup.spanning import Medium
from rescue_runtime.errors import ConfigError
from rescue_runtime.signals import shielded
from rescue_runtime.workflow import Workflow

log = logging.getLogger("mkmedia.workflow")


@dataclass
class Context:
    """What steps share during one run: typed fields, each set once by the step that makes
    it (None until then; `need()` says which step ran too early)."""

    config: Config
    workflow: str
    build_dir: Path
    log_path: Path | None = None
    # SOURCE_DATE_EPOCH, read once when the run starts: every time a step writes derives from it.
    epoch: int | None = None
    artifacts: list[Artifact] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    timings: list[tuple[str, float]] = field(default_factory=list)
    python: EmbeddedPython | None = None  # rootfs: the interpreter embedded into the tree
    layout_dir: Path | None = None  # layout: where this run saved the layout
    layout_sha256: str = ""  # the layout the backup was planned with
    backup_plan: BackupPlan | None = None  # layout (mkbackup): what the backup covers
    kernel_image: Path | None = None  # pack: the kernel copied into the build area
    initrd: Path | None = None  # pack: the compressed initrd
    payload_dirs: dict[str, Path] = field(default_factory=dict)  # backup: into the media
    tape_backup: Path | None = None  # backup (tape://): the staged backup for the tape
    # backup (iso:// over several media): each further medium and its backup directory
    volume_media: list[tuple[Medium, Path]] = field(default_factory=list)
    medium_id: str = ""  # rootfs: the media's marker id, as rescue.json has it
    output_staging: Path | None = None  # output: where the output set is staged

    @property
    def tree(self) -> Path:
        """The rescue tree being assembled."""
        return self.build_dir / "rootfs"

    @property
    def kernel(self) -> Kernel:
        """The kernel the configuration chose (once); its MissingError when there is none."""
        return self.config.kernel.kernel()

    def warn(self, message: str) -> None:
        log.warning("%s", message)
        self.warnings.append(message)


T = TypeVar("T")


def need(value: T | None, what: str) -> T:
    """A context field a step needs: a None here is a step-order bug, not a user error."""
    if value is None:
        raise RuntimeError(f"{what} is not there yet: the step that makes it has not run")
    return value


StepFunc = Callable[[Context], None]
Condition = Callable[[Config], bool]
# The builder's steps: the engine's, over its context and its configuration.
Step = engine.Step[Context, Config]

WORKFLOWS: dict[str, Workflow] = {
    w.name: w
    for w in (
        Workflow(
            "build",
            "build the rescue media (ReaR: mkrescue)",
            ("prep", "layout", "rootfs", "pack", "output", "cleanup"),
        ),
        Workflow(
            "mkbackup",
            "build the rescue media and make a backup",
            ("prep", "layout", "rootfs", "pack", "backup", "output", "cleanup"),
        ),
        # The saved layout stays as it is: the backup records the one it was taken with.
        Workflow("mkbackuponly", "make a backup only", ("prep", "backup", "cleanup")),
    )
}

# The modules of mkmedia.steps, imported by load_steps() so that their @step functions register.
STEP_MODULES = ("prep", "layout", "rootfs", "update", "pack", "backup", "output")

_REGISTRY: list[Step] = []


def step(
    stage: str, order: int, *, when: Condition | None = None
) -> Callable[[StepFunc], StepFunc]:
    """Register a function as a workflow step of `stage` at position `order`."""
    return engine.register(_REGISTRY, stage, order, when)


def load_steps() -> None:
    """Import the step modules (the list above) so their @step functions register."""
    for name in STEP_MODULES:
        importlib.import_module(f"mkmedia.steps.{name}")


def registered_steps() -> list[Step]:
    return list(_REGISTRY)


def plan(workflow: Workflow, config: Config) -> list[tuple[str, list[Step]]]:
    """The steps that would run, stage by stage, for this configuration."""
    result = engine.plan(workflow, _REGISTRY, config)
    for stage, steps in result:
        if stage == "backup":
            check_makes_backup(workflow, config, steps)
    return result


def check_makes_backup(workflow: Workflow, config: Config, steps: Sequence[Step]) -> None:
    """A backup workflow that would make no backup is refused: it must not end in success."""
    method = config.get_str("BACKUP")
    if method == "NONE":
        raise ConfigError(
            f"BACKUP=NONE: {workflow.name} makes no backup; use build, or set BACKUP "
            f"(NONE comes from {config.origin_text('BACKUP')}).",
        )
    if not steps:
        raise ConfigError(
            f"BACKUP={method}: this version has no backup step for it, so {workflow.name} "
            "would make no backup.",
            hint="Use build, or choose another BACKUP method.",
        )


def describe_plan(workflow: Workflow, config: Config, hooks_dir: Path) -> str:
    return engine.describe_plan(workflow, plan(workflow, config), hooks_dir)


# The private build directory of a run: created under TMPDIR with its owner recorded (the
# lock's record), so that one left by a run that died hard (SIGKILL, power loss) is removed by
# the next run.
BUILD_DIR_PREFIX = "mkmedia."
OWNER_FILE = ".mkmedia-owner"


def _unusable(parent: Path, problem: str) -> ConfigError:
    return ConfigError(
        f"Cannot create the build directory under TMPDIR={parent}: {problem}.",
        hint="Set TMPDIR (in local.yaml or with --set TMPDIR=DIR) to a directory mkmedia can "
        "write, with room for the rescue tree (a few hundred MB).",
    )


def make_build_dir(parent: Path) -> Path:
    """A new private directory `mkmedia.<pid>.<random>` under `parent`, owned by this run."""
    if parent.exists() and not parent.is_dir():
        raise _unusable(parent, "it exists and is not a directory")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        path = Path(tempfile.mkdtemp(prefix=f"{BUILD_DIR_PREFIX}{os.getpid()}.", dir=parent))
    except OSError as exc:
        raise _unusable(parent, exc.strerror or str(exc)) from exc
    try:
        # Renamed into place: a reaper reading a half-written record could take a live run's
        # directory for a dead one's.
        atomic.write_text(path / OWNER_FILE, Owner.current().to_text(), durable=False)
    except OSError as exc:
        shutil.rmtree(path, ignore_errors=True)
        raise _unusable(parent, exc.strerror or str(exc)) from exc
    return path


def disown(path: Path) -> None:
    """Keep a build directory for good (--keep-build-dir): no later run may reap it."""
    (path / OWNER_FILE).unlink(missing_ok=True)


def _dead_owner(path: Path) -> Owner | None:
    """The owner of a build directory when it is certainly dead; None for a live, kept (no
    record) or foreign one (another user's: never removed)."""
    try:
        info = path.lstat()
    except OSError:
        return None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        return None
    owner = read_record(path / OWNER_FILE)
    if owner is None or owner.pid == os.getpid() or owner.alive():
        return None
    return owner


def reap_build_dirs(parent: Path) -> list[Path]:
    """Remove the build directories under `parent` whose owning run is certainly dead."""
    try:
        entries = sorted(parent.iterdir())
    except OSError:
        return []
    reaped = []
    for path in entries:
        owner = _dead_owner(path) if path.name.startswith(BUILD_DIR_PREFIX) else None
        if owner is None:
            continue
        log.warning(
            "removing the build directory %s left by mkmedia %s, which is no longer running",
            path,
            owner.describe(),
        )
        shutil.rmtree(path, ignore_errors=True)
        reaped.append(path)
    return reaped


def run_workflow(
    workflow: Workflow,
    config: Config,
    *,
    hooks_dir: Path,
    build_dir: Path,
    keep_build_dir: bool = False,
    log_path: Path | None = None,
) -> Context:
    """Run every applicable step in order, with hooks around each stage."""
    ctx = Context(config, workflow.name, build_dir, log_path, epoch=source_date_epoch())
    env = config.environment()
    env["MKMEDIA_BUILD_DIR"] = str(build_dir)
    started = time.monotonic()
    try:
        planned = plan(workflow, config)
        engine.run_plan(
            workflow,
            planned,
            ctx,
            hooks_dir=hooks_dir,
            env=env,
            cwd=build_dir,
            say=say,
            timings=ctx.timings,
        )
    finally:
        with shielded():
            if keep_build_dir:
                disown(build_dir)
                say(f"kept the build directory {build_dir}")
            else:
                shutil.rmtree(build_dir, ignore_errors=True)
    say(f"{workflow.name} finished in {time.monotonic() - started:.1f} s")
    return ctx


def workflow_names() -> Sequence[str]:
    return list(WORKFLOWS)
