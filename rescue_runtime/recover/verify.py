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
from rescue_runtime.backup.netfs import extract_member
from rescue_runtime.errors import ConfigError, MissingError, MkmediaError, UsageError
from rescue_runtime.layout import store
from rescue_runtime.recover import finalize, mapping, resize
from rescue_runtime.recover.context import RecoverContext, step
from rescue_runtime.recover.recreate import KEY_DIR, generate
from rescue_runtime.recover.recreate_cli import (
    RESCUE_MARKERS,
    in_rescue_system,
    is_block_device,
    write_script,
)
from rescue_runtime.run import spawn, which

WORK_DIR = Path("/run/mkmedia/recover")


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
    if (located.directory / manifests.TAPE_SOURCE).is_file():
        ctx.note(
            f"backup on a tape: {ctx.manifest['files']} files; its size and sha256 are "
            "checked as it streams from the tape during the restore"
        )
    else:
        ctx.note(
            f"backup {located.directory}: {ctx.manifest['files']} files, checksums verified "
            f"in {time.monotonic() - t0:.1f} s"
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


@step("verify", 35)
def luks_keys_from_backup(ctx: RecoverContext) -> None:
    """A LUKS volume restored from its header backup opens with its crypttab key file."""
    if "recreate" not in ctx.stages or ctx.backup_dir is None:
        return
    for luks in ctx.layout.luks:
        if not luks.header_backup or not (luks.key_file or "").startswith("/"):
            continue
        key = Path(KEY_DIR) / f"{luks.name}.key"
        if key.exists():
            continue
        key.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        assert luks.key_file is not None
        if extract_member(ctx.backup_dir, luks.key_file, key):
            ctx.note(f"LUKS {luks.name}: opens with its key file {luks.key_file} from the backup")
        elif ctx.options.unattended:
            raise MissingError(
                f"The LUKS volume {luks.name} is recreated from its header backup, which opens "
                f"only with an original key, and its key file {luks.key_file} is not in the "
                "backup; nothing was touched.",
                hint=f"Run `mkmedia recover` interactively, or put a passphrase or key file "
                f"of the original volume into {key} first.",
            )


@step("verify", 40)
def map_disks(ctx: RecoverContext) -> None:
    """Place each saved disk on a present one (mapping file, identity, name, size)."""
    if "recreate" not in ctx.stages:
        return
    ctx.protected |= medium.rescue_medium_devices()
    present = mapping.present_disks()
    protected = _whole_disks(ctx.protected)
    proposal = mapping.propose(
        ctx.layout.disks,
        present,
        protected=protected,
        given=mapping.read_mapping_file(),
    )
    if not proposal.complete:
        candidates = mapping.candidate_table(ctx.layout.disks, present, proposal, protected)
        first = next(iter(proposal.ambiguous), None) or proposal.unplaced[0]
        example = (proposal.ambiguous.get(first) or ["/dev/NEW"])[0]
        raise MissingError(
            "The saved layout's disks cannot all be placed on the disks present without a "
            f"guess; nothing was touched.\n{candidates}",
            hint=f"Write the mapping into {mapping.MAPPING_FILE}, one 'OLD NEW' per line "
            f"(e.g. '{first} {example}'), and run recover again.",
        )
    small = []
    sizes = {d.path: d.size for d in present}
    for disk in ctx.layout.disks:
        new = proposal.pairs[disk.path]
        if sizes.get(new, disk.size) < disk.size:
            small.append(f"{new} ({sizes[new]} bytes, the layout needs {disk.size})")
    if small:
        raise MissingError(
            f"These disks are smaller than the saved layout's: {', '.join(small)}; nothing "
            "was touched.",
            hint="Attach disks at least as large (shrinking a layout is not implemented yet).",
        )
    if not proposal.identity:
        ctx.layout, ctx.mapped = mapping.apply_mapping(ctx.layout, proposal.pairs)
        for old, new in proposal.pairs.items():
            if old != new:
                ctx.note(f"disk {old} is recreated on {new} ({proposal.reasons[old]})")
    mode = str(ctx.config.settings.get("RESIZE_PARTITIONS") or "proportional")
    ctx.layout, changes = resize.resize_layout(ctx.layout, sizes, mode)
    for change in changes:
        ctx.note(f"larger disk: {change}")


@step("verify", 45)
def plan_recreate(ctx: RecoverContext) -> None:
    """Write the recreate script; check its disks: here and not the media."""
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
            f"The disks {', '.join(absent)} the recreate script writes are not on this "
            "machine; nothing was touched.",
            hint=f"Attach them, or map the saved disks to the present ones in "
            f"{mapping.MAPPING_FILE}.",
        )
    clash = sorted(set(ctx.plan.disks) & _whole_disks(ctx.protected))
    if clash:
        raise MkmediaError(
            f"The saved layout would rewrite {', '.join(clash)}, which holds the rescue "
            "system or the backup; nothing was touched.",
            hint="Boot the rescue media from another device, or map the saved disks to "
            f"other ones in {mapping.MAPPING_FILE}.",
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
