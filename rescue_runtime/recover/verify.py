"""recover's verify stage: everything that can be checked is checked before any disk is
written — the backup (reachable, complete, its checksums), the layout against the disks
present, the tools of every later stage, the LUKS keys — then the operator agrees (or, when
unattended, the checks alone decide). A failure here leaves every disk as it was."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

from rescue_runtime.backup import crypt, medium, method_class, spanmedia
from rescue_runtime.backup import manifest as manifests
from rescue_runtime.backup import restore as restoring
from rescue_runtime.backup.restore import extract_member
from rescue_runtime.errors import ConfigError, MissingError, MkmediaError, UsageError
from rescue_runtime.layout import store
from rescue_runtime.recover import (
    backupkey,
    exclude,
    finalize,
    finalize_network,
    mapping,
    report,
    resize,
)
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
    ctx.backup_key = backupkey.key_for(
        manifests.read_manifest(located.directory),
        ctx.config.settings,
        ask=ctx.ask,
        unattended=ctx.options.unattended,
        where=located.directory,
    )
    # every volume, the chain unbroken, and (encrypted) the key and the manifest's HMAC
    ctx.manifest = restoring.check(located.directory, key_file=ctx.backup_key)
    spanned_media(ctx, located.directory)
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


def spanned_media(ctx: RecoverContext, directory: Path) -> None:
    """A backup on several media: unattended, every further medium must be present and its
    volumes intact now; interactive, restore asks for each in turn."""
    further = spanmedia.further_media(
        directory,
        ctx.manifest,
        WORK_DIR,
        ask=None if ctx.options.unattended else ctx.ask,
        protected=ctx.protected,
    )
    if further is None:
        return
    ctx.note(further.note)
    ctx.backup_finder = further.finder


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
        if extract_member(ctx.backup_dir, luks.key_file, key, key_file=ctx.backup_key):
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
    dropped = _disks_left_out(ctx, proposal)
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
    _leave_out(ctx, dropped)
    sizes = {d.path: d.size for d in present}
    used = manifests.used_bytes(ctx.manifest) if ctx.manifest else {}
    if not proposal.identity:
        ctx.layout, ctx.mapped = mapping.apply_mapping(ctx.layout, proposal.pairs)
        used = mapping.rename_keys(used, ctx.mapped)
        for old, new in proposal.pairs.items():
            if old != new:
                ctx.note(f"disk {old} is recreated on {new} ({proposal.reasons[old]})")
                report.note("mapping", f"{old} -> {new} ({proposal.reasons[old]})")
    mode = str(ctx.config.settings.get("RESIZE_PARTITIONS") or "proportional")
    ctx.layout, changes = resize.resize_layout(ctx.layout, sizes, mode, used)
    for change in changes:
        ctx.note(change)
        report.note("resize", change)
    shrunk = [c for c in changes if c.startswith("smaller disk:")]
    if shrunk and not ctx.options.unattended:
        print("mkmedia recover: the resize plan for the smaller disks:", flush=True)
        for change in shrunk:
            print(f"  {change}", flush=True)
        answer = ctx.ask.choose("Recreate the layout with these sizes?", ("yes", "no"), "no")
        if answer != "yes":
            raise MkmediaError(
                "Recover stopped: the operator did not accept the resize plan; nothing was "
                "touched.",
                hint="Attach larger disks, or map the saved disks to other ones in "
                f"{mapping.MAPPING_FILE}.",
            )


def _disks_left_out(ctx: RecoverContext, proposal: mapping.DiskMapping) -> dict[str, str]:
    """Saved disks recover goes on without (disk id -> why): RAID1 mirror disks beyond the
    disks present (their arrays run degraded), and, when the operator agrees (never
    unattended), disks no present disk can take."""
    if proposal.complete:
        return {}
    left = mapping.mirrors_left_out(
        ctx.layout.disks, proposal, lambda path: exclude.redundant_disk(ctx.layout, path)
    )
    if left is not None:
        why = "a RAID1 mirror disk with no disk here for it: its arrays run degraded"
        return {f"disk:{path}": why for path in left}
    if proposal.ambiguous or ctx.options.unattended:
        return {}
    lost = exclude.leave_out(ctx.layout, {f"disk:{p}": "" for p in proposal.unplaced})
    mounts = ", ".join(lost.skipped_mounts) or "no mount point"
    answer = ctx.ask.choose(
        f"No disk here can take the place of {', '.join(proposal.unplaced)}. Recover without "
        f"it and everything built on it ({mounts} will not be restored)?",
        ("yes", "no"),
        "no",
    )
    if answer != "yes":
        return {}
    dropped = {
        f"disk:{p}": "no disk here takes its place; the operator agreed" for p in proposal.unplaced
    }
    proposal.unplaced.clear()
    return dropped


def _leave_out(ctx: RecoverContext, dropped: dict[str, str]) -> None:
    """Take the dropped disks and EXCLUDE_RECREATE's components (with everything built on
    them) out of the layout; say each in the report."""
    reasons = dict(dropped)
    setting = ctx.config.settings.get("EXCLUDE_RECREATE")
    already = ctx.layout.options.exclude  # left out when the layout was saved
    patterns = [str(p) for p in setting if p not in already] if isinstance(setting, list) else []
    for node_id, pattern in exclude.matching_ids(ctx.layout, patterns, "EXCLUDE_RECREATE").items():
        reasons.setdefault(node_id, f"EXCLUDE_RECREATE {pattern!r}")
    if not reasons:
        return
    result = exclude.leave_out(ctx.layout, reasons)
    if any(why.startswith("a RAID1 mirror") for why in dropped.values()) and result.skipped_mounts:
        raise MissingError(
            "Going on without the RAID1 mirror disks that have no disk here would lose "
            f"{', '.join(result.skipped_mounts)} (no member of their arrays is left); nothing "
            "was touched.",
            hint=f"Attach another disk, or map the saved disks in {mapping.MAPPING_FILE}.",
        )
    ctx.layout = result.layout
    ctx.skipped_mounts = result.skipped_mounts
    for node_id, why in result.removed.items():
        report.note("exclude", f"{node_id} left out: {why}")
    for line in result.degraded:
        ctx.note(f"WARNING: RAID1 {line}: the array is created degraded (one disk short)")
        report.note("raid", f"{line}: created degraded; add a disk later with mdadm --add")
    for mountpoint in result.skipped_mounts:
        ctx.note(f"{mountpoint} is left out: the restore skips its content")
        report.note(
            "exclude",
            f"{mountpoint}: not recreated, its content not restored; the restored fstab may "
            "still name it",
        )


@step("verify", 42)
def map_network_cards(ctx: RecoverContext) -> None:
    """Place each saved network card whose MAC is gone on a present one (mapping file,
    the one new card, driver and order); a guess is asked, or refused unattended."""
    if "finalize" not in ctx.stages:
        return
    saved = finalize_network.saved_nics(ctx.config.saved_interfaces)
    present = finalize_network.present_nics()
    ctx.nics = finalize_network.resolve_nics(
        saved,
        present,
        finalize_network.read_mac_mapping(),
        None if ctx.options.unattended else ctx.ask,
    )
    for old, new in ctx.nics.pairs.items():
        ctx.note(f"network card {old} is replaced by {new} ({ctx.nics.reasons[old]})")
    for old in ctx.nics.unplaced:
        ctx.note(f"network card {old} is gone and no card is free: its configuration stays")


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
        if crypt.encryption(ctx.manifest) is not None:
            needed += crypt.PROGRAMS
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
