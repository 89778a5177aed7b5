"""recover's writing stages: recreate (the reviewed script), restore (the backup method into
the target), finalize (boot loader, keys, initramfs decision, logs: finalize.py).

Each is re-runnable: the recreate script skips finished components, a finished restore leaves
a state file beside them, so recover after a failure and a fix continues where it stopped.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from rescue_runtime.backup import method_class
from rescue_runtime.backup.progress import GiB, MiB, ProgressLine
from rescue_runtime.errors import MkmediaError
from rescue_runtime.recover import finalize, report
from rescue_runtime.recover.context import RecoverContext, step
from rescue_runtime.recover.recreate import KEY_DIR
from rescue_runtime.run import run, spawn

log = logging.getLogger("mkmedia.recover")
RESTORED = "restore.done"


@step("recreate", 10)
def run_recreate(ctx: RecoverContext) -> None:
    """Run the recreate script: partitions, MD, LUKS, LVM, file systems, mounts."""
    plan = ctx.recreate_plan()
    state = ctx.state_dir()
    if ctx.options.restart and state.is_dir():
        for item in sorted(state.iterdir()):
            if item.is_file():
                item.unlink()
        ctx.note("--restart: finished components forgotten, everything is built again")
    print(f"mkmedia recover: writing {', '.join(plan.disks)}", flush=True)
    assert ctx.script is not None  # recreate_plan() checked it
    status = spawn(["bash", str(ctx.script)], env={"TARGET": ctx.options.target}).wait()
    if status != 0:
        raise MkmediaError(
            f"The recreate script {ctx.script} failed (exit status {status}); its last lines "
            "above name the component. The disks are partly recreated.",
            hint=f"Fix the cause (you may edit {ctx.script}) and run `mkmedia recover` again: "
            "finished components are skipped (--restart builds everything anew).",
        )


@step("restore", 10)
def restore_backup(ctx: RecoverContext) -> None:
    """Restore the backup into the target, with its files, owners, modes, xattrs and ACLs."""
    done = ctx.state_dir() / RESTORED if ctx.plan is not None else None
    if done is not None and done.exists() and not ctx.options.restart:
        ctx.note(f"the backup was restored before ({done}): not restored again")
        return
    assert ctx.backup_dir is not None  # verify located it
    target = Path(ctx.options.target)
    method = method_class(ctx.config.backup)
    restore = getattr(method, "restore", None)
    if restore is None:
        raise MkmediaError(f"BACKUP={ctx.config.backup} cannot restore in this version.")
    t0 = time.monotonic()
    line = ProgressLine("restore", every=15.0)
    try:
        extra: dict[str, object] = {}
        if ctx.backup_key is not None:
            extra["key_file"] = ctx.backup_key
        if ctx.backup_finder is not None:
            extra["finder"] = ctx.backup_finder
        if ctx.skipped_mounts:
            extra["skip_mounts"] = ctx.skipped_mounts
        # verify (locate_backup) checked every volume's sha256 in this run
        result = restore(ctx.backup_dir, target, progress=line, check_sha256=False, **extra)
    finally:
        line.close()
    seconds = time.monotonic() - t0
    for mountpoint in ctx.skipped_mounts:
        ctx.note(f"{mountpoint}: left out of the recovery, its content was not restored")
    size = int(ctx.manifest.get("bytes") or 0)  # type: ignore[call-overload]
    ctx.note(
        f"restored {result['files']} files, {size / GiB:.2f} GiB into {target} in "
        f"{seconds:.1f} s ({size / MiB / max(seconds, 1e-3):.0f} MiB/s)"
    )
    run(["sync"], what="flushing the restored files")
    if done is not None:
        done.parent.mkdir(parents=True, exist_ok=True)
        done.write_text(f"{result['files']} files\n")


@step("finalize", 10)
def finalize_system(ctx: RecoverContext) -> None:
    """Boot loader, LUKS keys, the initramfs decision, the logs into the restored system."""
    candidates = (ctx.log_file, _recreate_log(ctx), report.report_path())
    logs = [p for p in candidates if p is not None and p.exists()]
    request = finalize.FinalizeRequest(
        layout=ctx.layout,
        target=Path(ctx.options.target),
        key_dir=Path(KEY_DIR),
        logs=logs,
        ask=None if ctx.options.unattended else ctx.ask,
        changed=[],  # finalize adds what it rewrote and what the initramfs lacks
        mapped=ctx.mapped,
        nics=ctx.nics,
    )
    for note in finalize.finalize(request):
        ctx.note(note)


def _recreate_log(ctx: RecoverContext) -> Path | None:
    if ctx.plan is None:
        return None
    return Path(ctx.options.script_dir) / f"recreate-{ctx.plan.layout_digest}.log"


@step("finalize", 90, when=lambda subject: subject.unattended)
def unmount_target(ctx: RecoverContext) -> None:
    """Unattended: unmount the recovered system, so that power off or reboot finds it clean."""
    run(["sync"], what="flushing the recovered system")
    run(["umount", "--recursive", ctx.options.target], what="unmounting the recovered system")
    ctx.note(f"{ctx.options.target} unmounted")
