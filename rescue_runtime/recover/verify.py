"""recover's verify stage: everything that can be checked is checked before any disk is
written — the backup (reachable, complete, its checksums), the layout against the disks
present, the tools of every later stage, the LUKS keys — then the operator agrees (or, when
unattended, the checks alone decide). A failure here leaves every disk as it was."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

from rescue_runtime.backup import manifest as manifests
from rescue_runtime.backup import medium, method_class
from rescue_runtime.errors import ConfigError, MissingError, MkmediaError, UsageError
from rescue_runtime.layout import store
from rescue_runtime.recover import finalize
from rescue_runtime.recover.context import RecoverContext, step
from rescue_runtime.recover.recreate import generate
from rescue_runtime.recover.recreate_cli import (
    RESCUE_MARKERS,
    in_rescue_system,
    is_block_device,
    write_script,
)
from rescue_runtime.run import spawn, which

WORK_DIR = Path("/run/mkmedia/recover")


def block_size(path: str) -> int | None:
    """The size in bytes of the block device `path` (None when it cannot be read)."""
    name = os.path.basename(os.path.realpath(path))
    try:
        return int(Path(f"/sys/class/block/{name}/size").read_text()) * 512
    except (OSError, ValueError):
        return None


def restores(ctx: RecoverContext) -> bool:
    return "restore" in ctx.stages


@step("verify", 10)
def check_rescue_system(ctx: RecoverContext) -> None:
    """Refuse to run outside the rescue system (unless --force)."""
    if ctx.options.force or in_rescue_system():
        return
    raise UsageError(
        "mkmedia recover rewrites this machine's disks and runs only inside the rescue "
        f"system (none of {', '.join(RESCUE_MARKERS)} exists here); nothing was touched.",
        hint="Boot the rescue media, or add --force if this really is a machine to rebuild.",
    )


@step("verify", 20)
def load_layout(ctx: RecoverContext) -> None:
    """Read the saved layout the media carries."""
    ctx.layout = store.load(ctx.options.layout_dir)
    path = Path(ctx.options.layout_dir) / store.JSON_NAME
    ctx.layout_sha256 = hashlib.sha256(path.read_bytes()).hexdigest()


@step("verify", 30)
def locate_backup(ctx: RecoverContext) -> None:
    """Find the backup (the medium, a share) and check its manifest and every checksum."""
    if not restores(ctx):
        return
    name = ctx.config.backup.upper()
    method = method_class(name)
    if name != "NETFS":
        raise ConfigError(
            f"This rescue system was built with BACKUP={name}: it carries no way to restore "
            "a backup, so recover cannot bring the files back; nothing was touched.",
            hint="Use `mkmedia layoutonly` to recreate the disks and restore by hand, or "
            "build the media with BACKUP=NETFS.",
        )
    method.check_url(ctx.config.backup_url)
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    located = ctx.resources.enter_context(medium.located_backup(ctx.config, WORK_DIR))
    ctx.backup_dir = located.directory
    ctx.protected |= located.devices
    t0 = time.monotonic()
    ctx.manifest = manifests.verify(located.directory)
    ctx.note(
        f"backup {located.directory}: {ctx.manifest['files']} files, checksums verified in "
        f"{time.monotonic() - t0:.1f} s"
    )
    taken_with = ctx.manifest.get("layout_sha256")
    if taken_with and taken_with != ctx.layout_sha256:
        answer = ctx.ask.choose(
            "The backup was taken with another saved layout than the one this media "
            "carries. Go on anyway?",
            ("yes", "no"),
            "no",
        )
        if answer != "yes":
            raise MkmediaError(
                f"The backup in {located.directory} belongs to another layout (sha256 "
                f"{taken_with}) than {ctx.options.layout_dir} ({ctx.layout_sha256}); nothing "
                "was touched.",
                hint="Use the media made together with this backup (`mkmedia mkbackup`).",
            )


@step("verify", 40)
def plan_recreate(ctx: RecoverContext) -> None:
    """Write the recreate script; check its disks: here, large enough, not the media."""
    if "recreate" not in ctx.stages:
        return
    ctx.plan = generate(
        ctx.layout,
        target=ctx.options.target,
        script_dir=ctx.options.script_dir,
        layout_dir=ctx.options.layout_dir,
        source=f"{ctx.options.layout_dir}/{store.JSON_NAME}",
    )
    ctx.script = write_script(ctx.plan.script, ctx.options.script_dir, ctx.plan.layout_digest)
    ctx.note(f"recreate script: {ctx.script}")
    for warning in ctx.plan.warnings:
        ctx.note(f"warning: {warning}")
    absent = [d for d in ctx.plan.disks if not is_block_device(d)]
    if absent:
        raise MissingError(
            f"The saved layout's disks {', '.join(absent)} are not on this machine; nothing "
            "was touched.",
            hint="Attach disks of the same names (mapping disks of other names and sizes is "
            "not implemented yet), or boot the machine whose disks these are.",
        )
    ctx.protected |= medium.rescue_medium_devices()
    clash = sorted(set(ctx.plan.disks) & _whole_disks(ctx.protected))
    if clash:
        raise MkmediaError(
            f"The saved layout would rewrite {', '.join(clash)}, which holds the rescue "
            "system or the backup; nothing was touched.",
            hint="Boot the rescue media from another device, or attach the target disks "
            "under the names the layout has.",
        )
    sizes = {d.path: d.size for d in ctx.layout.disks}
    small = []
    for disk in ctx.plan.disks:
        present = block_size(disk)
        if present is not None and present < sizes[disk]:
            small.append(f"{disk} ({present} bytes, the layout needs {sizes[disk]})")
    if small:
        raise MissingError(
            f"These disks are smaller than the saved layout's: {', '.join(small)}; nothing "
            "was touched.",
            hint="Attach disks at least as large (shrinking a layout is not implemented yet).",
        )


def _whole_disks(devices: set[str]) -> set[str]:
    return {os.path.realpath(d) for d in devices} | set(devices)


@step("verify", 50)
def check_programs(ctx: RecoverContext) -> None:
    """Check that every program of recreate, restore and finalize is in this system."""
    needed: list[str] = []
    if ctx.plan is not None:
        needed += ctx.plan.programs
    if restores(ctx):
        needed += method_class(ctx.config.backup).programs_for(ctx.config.backup_url)
    if "finalize" in ctx.stages:
        needed += finalize.finalize_programs(ctx.layout)
    missing = sorted({p for p in needed if which(p) is None})
    if missing:
        raise MissingError(
            f"Recovering this layout needs {', '.join(missing)}, which this rescue system "
            "lacks; nothing was touched.",
            hint="Add them to the recipe's PROGS and build the rescue media again.",
        )


@step("verify", 60)
def check_luks_keys(ctx: RecoverContext) -> None:
    """Unattended: every LUKS volume must open again at boot (header backup or crypttab key)."""
    if "finalize" not in ctx.stages or not ctx.layout.luks or not ctx.options.unattended:
        return
    problems = finalize.luks_key_problems(ctx.layout, None)
    if problems:
        raise MkmediaError(
            "Unattended recover cannot give the recreated LUKS volumes a key the restored "
            f"system unlocks them with: {' '.join(problems)} Nothing was touched.",
            hint="Run `mkmedia recover` interactively (it asks for a new passphrase), or "
            "make the media with LUKS_HEADER_BACKUP=true.",
        )


@step("verify", 90)
def confirm(ctx: RecoverContext) -> None:
    """Show what will be written and ask before the first write (unattended: go on)."""
    if ctx.plan is None or ctx.script is None:
        return
    disks = ", ".join(ctx.plan.disks)
    print(f"mkmedia recover: the recreate script {ctx.script} rewrites {disks}.", flush=True)
    if ctx.options.unattended:
        return
    while True:
        answer = ctx.ask.choose(
            f"Everything on {disks} will be lost. Continue, view or edit the script, or abort?",
            ("continue", "view", "edit", "abort"),
            "abort",
        )
        if answer == "continue":
            return
        if answer == "abort":
            raise MkmediaError("Recover aborted by the operator; nothing was touched.")
        if answer == "view":
            print(ctx.script.read_text(), flush=True)
        else:
            editor = os.environ.get("EDITOR") or ("vi" if which("vi") else "nano")
            spawn([editor, str(ctx.script)], stdin=0, stdout=1, stderr=2).wait()
