"""The host's side of the full recovery cycle: back up a source machine into rescue media,
recover blank disks from it unattended, and boot what was recovered to judge it from inside.

Each phase boots QEMU once and says how long it took (`Phases`), so a slow phase shows up in
the test's output and in phases.json beside its logs.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mkmedia.qemu import Guest, Machine
from rescue_runtime.run import run, run_bytes
from tests.e2e import source
from tests.e2e.guest_mkmedia import built_iso, mkmedia_command, stage_mkmedia
from tests.e2e.source import SourceMachine

HERE = Path(__file__).resolve().parent
# Software emulation: generous limits, not timing assertions.
JOB_DEADLINE = 2400.0
RECOVER_DEADLINE = 2400.0
MEMORY_MIB = 1536
# Backup (tar | zstd) and restore (zstd -d | tar) are two busy processes: with two vCPUs
# QEMU runs them on two host threads (multi-threaded TCG).
PIPELINE_CPUS = 2

JOB_HEADER = """#!/bin/sh
set -e
export PYTHONDONTWRITEBYTECODE=1  # the job's own Python must not write into the system
cd /run/job
"""
VERDICT = "MKMEDIA-VERDICT"
# systemd gave up on a device or mount: the job (after local-fs.target) will never run
EMERGENCY = "You are in emergency mode"
# A kernel that panicked never gets further: waiting for its deadline would only cost time.
PANIC = r"Kernel panic - not syncing[^\r\n]*"
# On a starved host the kernel's early IO-APIC timer check can fail under TCG: it panics a few
# ms into the boot, before anything is mounted. The source machines' (and so the recovered
# machines') GRUB line has no no_timer_check, so such a boot is tried once more.
TIMER_PANIC = "IO-APIC + timer doesn't work"
BOOT_ATTEMPTS = 2
JOB_END = rf"MKMEDIA-JOB-END rc=(\d+)|{EMERGENCY}|{PANIC}"
# What the rescue system's /init says when the unattended recovery ends (init/boot.py), or
# that this version cannot recover.
RECOVER_OUTCOME = r"unattended recovery (finished|FAILED[^\r\n]*|is not available[^\r\n]*)|" + PANIC


@dataclass
class Phases:
    """Seconds per phase of one cycle, printed and kept in DIR/phases.json."""

    directory: Path
    seconds: dict[str, float] = field(default_factory=dict)

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.monotonic()
        try:
            yield
        finally:
            self.seconds[name] = round(time.monotonic() - start, 1)
            (self.directory / "phases.json").write_text(json.dumps(self.seconds, indent=1))
            print(f"phase {name}: {self.seconds[name]:.0f} s", flush=True)


def new_job(directory: Path, script: str, *, with_mkmedia: bool = False) -> Path:
    """A job share: run.sh, the guest-side scripts, and mkmedia when the job runs it."""
    directory.mkdir(parents=True)
    for helper in ("treemanifest.py", "cyclejob.py"):
        shutil.copy(HERE / helper, directory / helper)
    if with_mkmedia:
        stage_mkmedia(directory)
    (directory / "run.sh").write_text(JOB_HEADER + script)
    (directory / "run.sh").chmod(0o755)
    (directory / "poweroff").touch()
    return directory


def run_job(
    machine: SourceMachine,
    disks: list[Path],
    job: Path,
    *,
    console_log: Path,
    vars_file: Path | None = None,
    cpus: int = 1,
) -> str:
    """Boot the disks with this job, wait for it to end and the machine to power off; the
    console output. A job that fails fails the test with its log and the console's tail."""
    with source.boot_source(
        machine,
        disks,
        job,
        console_log=console_log,
        deadline=JOB_DEADLINE,
        memory_mib=MEMORY_MIB,
        cpus=cpus,
        vars_file=vars_file,
    ) as guest:
        match = guest.expect(JOB_END, timeout=JOB_DEADLINE)
        assert match.group(1) is not None, f"{machine.spec.name} did not boot:\n{guest.tail(60)}"
        powered_off = guest.wait_exit(300)
        output = guest.output
        tail = guest.tail(40)
    log = (job / "run.log").read_text(errors="replace") if (job / "run.log").exists() else ""
    assert match.group(1) == "0", f"job {job} failed:\n{log[-4000:]}\nconsole:\n{tail}"
    assert powered_off is not None, f"{machine.spec.name} did not power off:\n{tail}"
    return output


def blank_disks(directory: Path, sizes_mib: tuple[int, ...]) -> list[Path]:
    """Empty sparse raw disks of these sizes (the replacement disks of a dead machine)."""
    directory.mkdir(parents=True, exist_ok=True)
    disks = []
    for index, size in enumerate(sizes_mib):
        disk = directory / f"blank{index}.img"
        with open(disk, "wb") as handle:
            handle.truncate(size << 20)
        disks.append(disk)
    return disks


def recipe_text(boot_default: str) -> str:
    return f"""description: the full recovery cycle's backup (tests/e2e/test_recover_cycle.py)
BACKUP: NETFS
BACKUP_URL: iso:///backup
BOOT_DEFAULT: {boot_default}
BOOT_TIMEOUT: 2
UNATTENDED_ACTION: poweroff
# A starved TCG guest can fail the kernel's IO-APIC timer check and panic (tests/vm/
# test_usb_boot.py); the check proves nothing about recovery.
KERNEL_CMDLINE: no_timer_check
OUTPUT_URL: file:///run/job/out
# The drivers the source runs on (its storage stack, its file systems) and those of the CD
# drive holding the backup: a small initrd boots faster under software emulation than the
# default storage+network set (850 modules).
MODULES_POLICY: loaded
MODULES:
  append: [isofs, sr_mod, cdrom, ata_piix, ahci, nls_cp437, nls_iso8859_1, vfat, efivarfs]
"""


BACKUP_JOB = """{mkbackup}
python3 cyclejob.py record /run/job/tree.json {data_dirs}
python3 cyclejob.py state /run/job/state.json
# The compare can fail: a copy of a data directory agrees with its own manifest, then a mode
# and an xattr changed on it are both reported.
cp -a {data_dir} /tmp/selfcheck
python3 treemanifest.py record /tmp/selfcheck -o /run/job/selfcheck.json
python3 treemanifest.py compare /run/job/selfcheck.json > /run/job/selfcheck-same.txt
chmod 0600 /tmp/selfcheck/meta/xattrs
setfattr -x user.mkmedia.comment /tmp/selfcheck/meta/xattrs
python3 treemanifest.py compare /run/job/selfcheck.json > /run/job/selfcheck-altered.txt \
    || echo "rc=$?" >> /run/job/selfcheck-altered.txt
rm -rf /tmp/selfcheck
"""
SELFCHECK_ALTERED = [
    "changed: /tmp/selfcheck/meta/xattrs mode: '0644' -> '0600'",
    "changed: /tmp/selfcheck/meta/xattrs xattrs:",
    "treemanifest: ",
    "rc=1",
]


@dataclass
class Backup:
    iso: Path
    manifest: Path  # the treemanifest recorded at backup time
    state: dict[str, object]  # the identities recovery must keep (cyclejob.py state)
    source_disks: list[Path]  # the source's overlays, as the backup left them


def backup_on_source(
    machine: SourceMachine, directory: Path, *, boot_default: str = "unattended"
) -> Backup:
    """Boot the source, `mkmedia mkbackup` into an ISO carrying the backup (iso:///backup),
    record what the backup covers as it is now; the ISO on the job share is the media."""
    disks = machine.overlays(directory / "source-disks")
    mkbackup = mkmedia_command(
        "mkbackup", "/run/job/recipe.yaml", "-c", "/run/job/etc", "--log-file",
        "/run/job/mkbackup.log",
    )  # fmt: skip
    data_dirs = " ".join(f"--data-dir {d}" for d in machine.spec.data_dirs)
    job = new_job(
        directory / "backup-job",
        BACKUP_JOB.format(
            mkbackup=mkbackup, data_dirs=data_dirs, data_dir=machine.spec.data_dirs[0]
        ),
        with_mkmedia=True,
    )
    (job / "etc").mkdir()
    (job / "recipe.yaml").write_text(recipe_text(boot_default))
    run_job(machine, disks, job, console_log=directory / "source.log", cpus=PIPELINE_CPUS)
    same = (job / "selfcheck-same.txt").read_text()
    assert same.endswith(" 0 differences\n"), same
    altered = (job / "selfcheck-altered.txt").read_text().splitlines()
    assert len(altered) == len(SELFCHECK_ALTERED), altered
    for line, start in zip(altered, SELFCHECK_ALTERED, strict=True):
        assert line.startswith(start), altered
    iso = built_iso(job / "out")
    listing = run(["isoinfo", "-R", "-f", "-i", str(iso)]).stdout
    assert "/backup/" in listing, f"{iso} holds no /backup directory:\n{listing[:2000]}"
    shutil.rmtree(job / "py")
    state = json.loads((job / "state.json").read_text())
    return Backup(iso, job / "tree.json", state, disks)


def rescue_machine(
    machine: SourceMachine,
    iso: Path,
    disks: list[Path],
    *,
    vars_file: Path | None,
    interface: str = "virtio",
    mac: str | None = None,
) -> Machine:
    """The dead machine's replacement booting the rescue ISO from its CD drive, with these
    disks on `interface` (source.INTERFACES); a network card with `mac`, or none."""
    virtio, nvme = source.on_controller(disks, interface)
    return Machine(
        firmware=machine.spec.firmware,
        memory_mib=MEMORY_MIB,
        cpus=PIPELINE_CPUS,
        cdrom=iso,
        boot_order="d",
        disks=virtio,
        nvme_disks=nvme,
        network=mac is not None,
        mac=mac,
        vars_file=vars_file,
    )


def recover_unattended(
    machine: SourceMachine,
    iso: Path,
    disks: list[Path],
    *,
    console_log: Path,
    vars_file: Path | None,
    interface: str = "virtio",
    mac: str | None = None,
) -> None:
    """Boot the ISO on the disks with nobody at the keyboard: the menu's default entry
    recovers and powers off. Fails with the console's tail when it does not."""
    rescue = rescue_machine(machine, iso, disks, vars_file=vars_file, interface=interface, mac=mac)
    with Guest(rescue, deadline=RECOVER_DEADLINE, console_log=console_log, name="rescue") as g:
        outcome = g.expect(RECOVER_OUTCOME, RECOVER_DEADLINE).group(0)
        # (a failure's text may say "finished components are skipped": the word after
        # "recovery" decides)
        finished = outcome.startswith("unattended recovery finished")
        status = g.wait_exit(300) if finished else None
        tail = g.tail(80)
    assert finished, f"unattended recover did not finish: {outcome}\n{tail}"
    assert status is not None, f"the rescue system did not power off after recover:\n{tail}"


# The identities first: their LVM commands are what a user runs first on the recovered
# machine, and LVM archives VG metadata it finds newer than /etc/lvm/backup, so a VG that
# recreate did not bring back exactly (seqno, creation times) shows in the compare.
VERIFY_JOB = """python3 cyclejob.py state /run/job/state.json
{extra}
set +e
python3 treemanifest.py compare /run/job/tree.json > /run/job/compare.txt 2>&1
rc=$?
echo "{verdict} rc=$rc $(tail -n 1 /run/job/compare.txt)" > /dev/ttyS0
exit $rc
"""
# The LUKS machine: the volume is open (the initramfs unlocked it with the key file that
# crypttab names, nobody typed anything) and that key file opens it.
LUKS_CHECK = """
cryptsetup status cryptpv > /run/job/luks.txt
cryptsetup open --test-passphrase --key-file /etc/keys/cryptpv.key \\
    "$(cryptsetup status cryptpv | awk '$1 == "device:" {print $2}')"
echo "key file opens it" >> /run/job/luks.txt
"""


def menu_entry(iso: Path, entry: str, directory: Path) -> tuple[Path, Path, str]:
    """The kernel, initrd and kernel command line of one BIOS boot menu entry of the ISO,
    taken out of it: a test that needs the rescue shell boots them directly, with no one to
    pick the entry at the menu."""
    directory.mkdir(parents=True, exist_ok=True)
    config = run(["isoinfo", "-R", "-i", str(iso), "-x", "/isolinux/isolinux.cfg"]).stdout
    label = re.search(rf"(?ms)^LABEL {re.escape(entry)}$(.*?)(?=^LABEL |\Z)", config)
    assert label, f"no menu entry {entry} in {iso}:\n{config}"
    fields = dict(re.findall(r"(?m)^\s+(LINUX|INITRD|APPEND) (.*)$", label.group(1)))
    files = []
    for key in ("LINUX", "INITRD"):
        target = directory / Path(fields[key]).name
        data = run_bytes(["isoinfo", "-R", "-i", str(iso), "-x", fields[key]])
        target.write_bytes(data)
        files.append(target)
    return files[0], files[1], fields["APPEND"]


@dataclass
class Verdict:
    rc: int
    line: str  # the verdict as the guest printed it on the serial console
    differences: str  # compare.txt: every difference
    state: dict[str, object]
    console: str
    job: Path


def verify_from_inside(
    machine: SourceMachine,
    disks: list[Path],
    manifest: Path,
    directory: Path,
    *,
    vars_file: Path | None = None,
    extra: str = "",
    interface: str = "virtio",
    mac: str = source.SOURCE_MAC,
) -> Verdict:
    """Boot the disks alone (on `interface`); a job inside compares them with the manifest
    and prints its verdict on the serial console."""
    job = new_job(directory, VERIFY_JOB.format(verdict=VERDICT, extra=extra))
    shutil.copy(manifest, job / "tree.json")
    for attempt in range(1, BOOT_ATTEMPTS + 1):
        suffix = "" if attempt == 1 else f"-{attempt}"
        with source.boot_source(
            machine,
            disks,
            job,
            console_log=directory / f"console{suffix}.log",
            deadline=JOB_DEADLINE,
            memory_mib=MEMORY_MIB,
            vars_file=vars_file,
            interface=interface,
            mac=mac,
        ) as guest:
            verdict = guest.expect(rf"{VERDICT} rc=(\d+) ([^\r\n]*)|{JOB_END}", JOB_DEADLINE)
            if TIMER_PANIC in verdict.group(0) and attempt < BOOT_ATTEMPTS:
                print(f"{machine.spec.name}: {TIMER_PANIC} (a starved host): booting again")
                continue
            if verdict.group(1) is None:  # no verdict: the job failed before it, or no boot
                log = (job / "run.log").read_text(errors="replace") if verdict.group(3) else ""
                raise AssertionError(f"no verdict:\n{log[-3000:]}\nconsole:\n{guest.tail(60)}")
            end = guest.expect(r"MKMEDIA-JOB-END rc=(\d+)", timeout=600)
            guest.wait_exit(300)
            console = guest.output
        break
    log = (job / "run.log").read_text(errors="replace")
    rc = int(verdict.group(1))
    assert end.group(1) == str(rc), f"the verify job failed:\n{log[-3000:]}"
    state = json.loads((job / "state.json").read_text())
    differences = (job / "compare.txt").read_text(errors="replace")
    return Verdict(rc, verdict.group(0), differences, state, console, job)


def recover_and_verify(
    machine: SourceMachine,
    backup: Backup,
    directory: Path,
    sizes_mib: tuple[int, ...],
    *,
    extra: str = "",
    interface: str = "virtio",
    mac: str | None = None,
) -> tuple[Path, Verdict]:
    """Recover the backup unattended onto blank disks of these sizes on `interface` (and a
    network card with `mac` in both machines, another than the source's; None: the rescue
    system has none), boot them and compare from inside (running `extra` there first): the
    rescue console's log and the verdict. Each phase's time goes to DIR/phases.json."""
    name = machine.spec.name
    phases = Phases(directory)
    disks = blank_disks(directory / "target", sizes_mib)
    nvram = directory / "target" / "OVMF_VARS.fd" if machine.spec.firmware == "uefi" else None
    log = directory / "rescue.log"
    sizes_text = "+".join(f"{size} MiB" for size in sizes_mib)
    with phases.phase(f"{name}: unattended recover onto {sizes_text} ({interface})"):
        recover_unattended(
            machine,
            backup.iso,
            disks,
            console_log=log,
            vars_file=nvram,
            interface=interface,
            mac=mac,
        )
    with phases.phase(f"{name}: boot the recovered disks + compare"):
        verdict = verify_from_inside(
            machine,
            disks,
            backup.manifest,
            directory / "verify",
            vars_file=nvram,
            extra=extra,
            interface=interface,
            mac=mac or source.SOURCE_MAC,
        )
    return log, verdict
