"""User hooks: executables in CONFIG_DIR/hooks.d/<stage>/{pre,post}/, run in name order."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

from rescue_runtime.errors import CommandError, StepError
from rescue_runtime.run import run

log = logging.getLogger("mkmedia.hooks")

PHASES = ("pre", "post")


def find_hooks(hooks_dir: Path, stage: str, phase: str) -> list[Path]:
    """The hooks of one stage and phase, in name order. Non-executable files are an error:
    a hook the admin wrote but forgot to chmod must not be skipped silently."""
    directory = hooks_dir / stage / phase
    if not directory.is_dir():
        return []
    hooks = []
    for path in sorted(directory.iterdir(), key=lambda p: p.name):
        if path.name.startswith(".") or path.name.endswith(("~", ".bak", ".disabled")):
            continue
        if not path.is_file():
            continue
        if not os.access(path, os.X_OK):
            raise StepError(
                f"The hook {path} is not executable.",
                hint=f"Make it executable (chmod +x {path}) or rename it to end in .disabled.",
            )
        hooks.append(path)
    return hooks


def run_hooks(
    hooks_dir: Path, stage: str, phase: str, env: Mapping[str, str], *, cwd: Path | None = None
) -> list[Path]:
    ran = []
    for hook in find_hooks(hooks_dir, stage, phase):
        log.info("  hook %s/%s/%s", stage, phase, hook.name)
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
