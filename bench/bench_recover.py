"""Unattended bare-metal recovery of the BIOS + LVM source machine: mkmedia against ReaR 2.7,
onto blank disks like the source's or onto other hardware (issue 12's migrations).

    python -m bench recover                     # both sides (ReaR from its cache when it has it)
    python -m bench.bench_recover --only rear   # one side
    python -m bench.bench_recover --fresh-rear  # measure ReaR again, ignoring its cache
    python -m bench.bench_recover --target larger-nvme --target smaller   # migrations

Both sides in the same way, on qcow2 overlays of the same source machine (tests/e2e/source.py):
install or stage the tool in the source, `mkbackup` with BACKUP=NETFS and BACKUP_URL=iso:///backup
(the backup inside the rescue ISO), take the ISO out on the job share, boot it with SeaBIOS on
the target's blank disks, let it recover with nobody at the keyboard until it powers off
(ReaR: reboots, which QEMU's -no-reboot turns into an exit), then boot the recovered disks and
collect the recovery log from them (the machine's job service runs: it booted). One backup per
side serves every target. The targets (TARGETS): `same` (disks of the source's size, the
default), `larger-nvme` (one NVMe disk 50 % larger, as tests/e2e/test_migration.py) and
`smaller` (a disk half the size, which still holds the data).

Printed: per side the mkbackup time and ISO size, per target the recover wall time (QEMU start
to exit), each stage's time and the restore throughput, how the recovery ended, which questions
went to their default on a timeout and what the tool said about the migration (ReaR's
MIGRATION_MODE lines, its errors); then a side-by-side table, and for `same` ReaR / mkmedia.
A guest still waiting at a question (asked again and again, or silent at a prompt) is killed and
reported as "stopped at a question". Software emulation: absolute seconds depend on the machine
and its load; the ratios are what to compare. Nothing is asserted.

ReaR is Debian 12's `rear` package with what it needs that the source lacks, taken with the
host's apt (`apt-get download`, the versions apt would install into the source) and installed
with dpkg in the guest. Its ISO and each target's results are cached under CACHE keyed by the
source machine, the rear package version and the configuration below: ReaR does not change
between our commits.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from mkmedia.qemu import Guest, GuestError, Machine
from rescue_runtime.run import run
from tests.conftest import REPO
from tests.e2e import source
from tests.e2e.guest_mkmedia import mkmedia_command, stage_mkmedia

CACHE = Path(os.environ.get("MKMEDIA_BENCH_CACHE", "/var/tmp/mkmedia-bench-cache"))
MACHINE = "bios-lvm"
MEMORY_MIB = 1536  # every guest of both sides
RECOVER_DEADLINE = 3600.0
# A recovered machine boots and runs its job in minutes; one that does not boot (no boot loader
# found on the new disk) prints nothing more, and this ends the wait.
BOOT_DEADLINE = 1500.0
MiB = 1 << 20

# ReaR 2.7's unattended mode (skel/default/etc/scripts/system-setup): the `unattended` kernel
# option runs `rear recover`, then after success prints "'rear recover' finished successfully",
# sleeps 30 s and reboots (there is no power-off setting). ISO_DEFAULT=automatic with
# ISO_RECOVER_MODE=unattended makes that the ISOLINUX default (its menu timeout is a fixed
# `timeout 300`, 30 s, in lib/bootloader-functions.sh). ISO_DIR on the job share: the ISO is
# made there, nothing to copy out afterwards (OUTPUT_URL=null).
REAR_CONF = """\
OUTPUT=ISO
BACKUP=NETFS
BACKUP_URL=iso:///backup
OUTPUT_URL=null
ISO_DIR=/run/job/rear
ISO_DEFAULT=automatic
ISO_RECOVER_MODE=unattended
USER_INPUT_TIMEOUT=5
USE_SERIAL_CONSOLE=yes
SERIAL_CONSOLE_DEVICES_KERNEL="console=tty0 console=ttyS0,115200"
"""
# `file` is among ReaR 2.7's REQUIRED_PROGS, but Debian's rear does not depend on it.
REAR_PACKAGES = ("rear", "file")
REAR_DONE = "'rear recover' finished successfully"
REAR_FAILED = "'rear recover' failed"
# rescue_runtime/init/boot.py says these on every console around the unattended recovery.
MKMEDIA_DONE = "mkmedia init: unattended recovery finished"
MKMEDIA_FAILED = "mkmedia init: unattended recovery FAILED"
MARK = "BENCH-MARK"  # job scripts print "BENCH-MARK name" to the serial console

EMERGENCY = "Press Enter for maintenance"
EMERGENCY_JOB = (
    "udevadm settle; mount -o remount,rw /; mount -a; swapon -a; /usr/local/sbin/mkmedia-test-job"
)
MARK_SH = f'mark() {{ echo "{MARK} $1" > /dev/ttyS0; }}\n'
REAR_MKBACKUP_JOB = (
    "#!/bin/bash\nset -e\n"
    + MARK_SH
    + """
# Whether this guest reaches the host's Debian mirror (not needed: the packages come from the
# share, fetched by the host).
if timeout 20 bash -c 'exec 3<>/dev/tcp/@MIRROR_HOST@/80' 2>/dev/null; then
    echo reachable > /run/job/mirror.txt
else
    echo unreachable > /run/job/mirror.txt
fi
# Libraries first: dpkg -i of one batch unpacks in name order, and gawk pre-depends on
# libmpfr6; what waits for a later package is configured at the end.
dpkg -i /run/job/debs/lib*.deb > /run/job/dpkg.log 2>&1 || true
dpkg -i $(ls /run/job/debs/*.deb | grep -v '/lib[^/]*$') >> /run/job/dpkg.log 2>&1 || true
dpkg --configure -a >> /run/job/dpkg.log 2>&1
dpkg-query -W -f '${Version}\\n' rear > /run/job/rear-version.txt
mkdir -p /run/job/rear
cp /run/job/local.conf /etc/rear/local.conf
mark mkbackup-start
rear -v mkbackup > /run/job/mkbackup.out 2>&1
mark mkbackup-end
cp /var/log/rear/rear-*.log /run/job/ || true
df -m > /run/job/df.txt
"""
)
MKMEDIA_MKBACKUP_JOB = (
    "#!/bin/sh\nset -e\n"
    + MARK_SH
    + """
mark mkbackup-start
@MKBACKUP@ --log-file /run/job/mkmedia.log --set OUTPUT_URL=file:///run/job/out \\
    --set BACKUP=NETFS --set BACKUP_URL=iso:///backup --set BOOT_DEFAULT=@BOOT_DEFAULT@ \\
    --set BOOT_TIMEOUT=2 --set UNATTENDED_ACTION=poweroff
mark mkbackup-end
df -m > /run/job/df.txt
"""
)
# On the recovered disks: the job service runs (so the system booted) and hands out the logs.
COLLECT_JOB = """#!/bin/sh
mkdir -p /run/job/logs
cp -a /var/log/rear /var/log/mkmedia /run/job/logs/ 2>/dev/null
find /var/log/rear /var/log/mkmedia > /run/job/logs/list.txt 2>&1
uname -r > /run/job/logs/kernel.txt
findmnt -rn -o TARGET,SOURCE,FSTYPE > /run/job/logs/mounts.txt
exit 0
"""


@dataclass(frozen=True)
class Target:
    """The replacement machine's blank disks, relative to the source's."""

    name: str
    scale: tuple[int, int]  # each disk's new size: old * numerator // denominator
    interface: str  # the controller they are on (source.INTERFACES)
    what: str

    def sizes_mib(self, machine: source.SourceMachine) -> tuple[int, ...]:
        numerator, denominator = self.scale
        return tuple(size * numerator // denominator for size in machine.spec.disks_mib)


TARGETS = {
    target.name: target
    for target in (
        Target("same", (1, 1), "virtio", "blank virtio disks of the source's size"),
        # as tests/e2e/test_migration.py: a larger disk on another controller, one recovery
        Target("larger-nvme", (3, 2), "nvme", "one NVMe disk 50 % larger than the source's"),
        # half of bios-lvm's 6 GiB still holds its data (test_migration.py checks that)
        Target("smaller", (1, 2), "virtio", "one virtio disk half the source's size"),
    )
}


@dataclass
class Recovery:
    """One tool's unattended recovery onto one target; seconds are host wall time."""

    target: str
    recover_wall_s: float = 0.0  # QEMU start on the blank disks to its exit (or its kill)
    recover_done_s: float = 0.0  # QEMU start to the tool saying it is done (or failed)
    stages: dict[str, float] = field(default_factory=dict)  # from the tool's own log
    phases: dict[str, float] = field(default_factory=dict)  # host-timed console milestones
    restore_mib_s: float = 0.0
    restored_mib: float = 0.0
    finished: bool = False  # said it was done and its guest ended by itself, nobody typing
    ending: str = ""  # powered off, rebooted, failed, stopped at a question, killed, ...
    stopped_at: str = ""  # the question it was left waiting at
    asked: list[str] = field(default_factory=list)  # questions a timeout answered
    said: list[str] = field(default_factory=list)  # its migration and error lines
    booted: bool = False  # the recovered disks boot: their job service ran
    notes: list[str] = field(default_factory=list)


@dataclass
class Side:
    """What one tool did: one backup, recovered onto each target."""

    name: str
    mkbackup_s: float = 0.0
    iso_bytes: int = 0
    notes: list[str] = field(default_factory=list)
    recoveries: dict[str, Recovery] = field(default_factory=dict)


# -- shared machinery ---------------------------------------------------------------------------


def write_job(job: Path, script: str, *, poweroff: bool = True) -> None:
    job.mkdir(parents=True, exist_ok=True)
    (job / "run.sh").write_text(script)
    (job / "run.sh").chmod(0o755)
    if poweroff:
        (job / "poweroff").touch()


def run_job(
    machine: source.SourceMachine,
    disks: list[Path],
    job: Path,
    log: Path,
    notes: list[str],
    *,
    interface: str = "virtio",
    deadline: float = RECOVER_DEADLINE,
) -> dict[str, float]:
    """Boot the source (or recovered) disks with this job; the host times of its marks.

    On a loaded 2-core host udev can take longer than systemd's 90 s device timeout, and the
    machine stops in emergency mode before the job service. Its root has no password: the
    emergency shell on the serial console mounts what is there and runs the job by hand."""
    marks: dict[str, float] = {}
    with source.boot_source(
        machine, disks, job, console_log=log, deadline=deadline, interface=interface
    ) as g:
        pattern = rf"{MARK} (\S+)|MKMEDIA-JOB-END rc=(\d+)|{EMERGENCY}"
        while True:
            found = g.expect(pattern, timeout=deadline)
            if found.group(1):
                marks[found.group(1)] = g.elapsed()
            elif found.group(2) is not None:
                rc = int(found.group(2))
                break
            else:
                notes.append(f"{log.name}: emergency mode at {g.elapsed():.0f} s (device timeout)")
                g.sendline("")
                time.sleep(5)
                g.sendline(EMERGENCY_JOB)
        if rc != 0:
            run_log = job / "run.log"
            tail = run_log.read_text(errors="replace")[-3000:] if run_log.exists() else ""
            raise RuntimeError(f"the job in {job} failed (rc={rc}); console {log}\n{tail}")
        g.wait_exit(300)
    return marks


def blank_disks(machine: source.SourceMachine, target: Target, into: Path) -> list[Path]:
    into.mkdir(parents=True, exist_ok=True)
    disks = []
    for i, size in enumerate(target.sizes_mib(machine)):
        disk = into / f"blank{i}.img"
        with open(disk, "wb") as handle:
            handle.truncate(size * MiB)
        disks.append(disk)
    return disks


@dataclass(frozen=True)
class Milestones:
    """Console lines (regexes) that split a recovery into phases, timed by the host."""

    start: str  # the tool starts recovering (the rescue system's boot is before it)
    restore: str  # the restore begins (verify and layout recreation are before it)
    restored: str  # the restore is over (finalize, boot loader, initramfs after it)
    done: str
    failed: str
    said: str  # what it says about a migration (disk mapping, resizing) and its errors


REAR_MILESTONES = Milestones(
    start=r"Running workflow recover",
    restore=r"Preparing to restore|Restoring from",
    restored=r"Restored \d+ MiB in \d+ seconds",
    done=re.escape(REAR_DONE),
    failed=re.escape(REAR_FAILED),
    # 250_compare_disks.sh and 300_map_disks.sh decide MIGRATION_MODE and map the disks
    said=r"MIGRATION_MODE|manual (disk layout )?configuration|Comparing disks|for recreating"
    r"|had size|no longer exist|not used on the original system|looks identical|mapping"
    r"|[Rr]esiz|[Ss]hrink|ERROR|WARNING|[Ff]ailed|[Ee]rror",
)
MKMEDIA_MILESTONES = Milestones(
    start=re.escape("mkmedia init: unattended recovery starting"),
    restore=r"^restore/\d+_",
    restored=r"^finalize/\d+_",
    done=re.escape(MKMEDIA_DONE),
    failed=re.escape(MKMEDIA_FAILED),
    said=r"mkmedia recover: |FAILED|ERROR|[Rr]efus",
)

# ReaR's UserInput shows a question as its prompt, numbered choices and "(default 'X' timeout
# N seconds)"; after a failed unattended recover its system-setup waits in bash's `select`
# ("Select what to do"). Nobody answers here: a guest that asks one question QUESTION_REPEATS
# times (a default that loops, as "Rerun disk recreation script") or sits silent at a prompt
# for QUESTION_IDLE_S waits for a person, and is stopped there.
QUESTION_REPEATS = 3
QUESTION_IDLE_S = 300.0
SHOWN_DEFAULT = re.compile(
    r"\((?:default '(?P<default>[^']*)')? ?(?:timeout (?P<timeout>\d+) s\w*)?\)"
)
CHOICE = re.compile(r"(\d+)\) (.*)")
PROMPT_END = re.compile(r"(\(default [^)]*\)|\(timeout [^)]*\)|Select what to do|#\?|\?)\s*$")
SAID_MAX = 40  # lines kept per recovery


def console_lines(text: str) -> list[str]:
    return [line.strip() for line in text.replace("\r", "").split("\n")]


def questions(text: str) -> list[tuple[str, str]]:
    """(prompt, the choice its default names) of each question the console showed."""
    lines = console_lines(text)
    asked = []
    for index, line in enumerate(lines):
        shown = SHOWN_DEFAULT.fullmatch(line)
        if not shown or (shown["default"] is None and not shown["timeout"]):
            continue
        first, choices = index, {}
        while first > 0 and (choice := CHOICE.fullmatch(lines[first - 1])):
            choices[choice[1]] = choice[2]
            first -= 1
        prompt = lines[first - 1] if first > 0 else ""
        default = shown["default"] or ""
        asked.append((prompt, choices.get(default, default)))
    return asked


def waiting_at(text: str, idle_s: float) -> str:
    """The question the console waits at with nobody to answer it, or ""."""
    asked = questions(text)
    if asked:
        prompt = asked[-1][0]
        repeats = sum(1 for p, _ in asked if p == prompt)
        if repeats >= QUESTION_REPEATS:
            return f"{prompt} (asked {repeats} times, each time its default taken)"
    if idle_s >= QUESTION_IDLE_S:
        return last_prompt(text)
    return ""


def last_prompt(text: str) -> str:
    """The console's last lines when they end in a prompt (the question and its choices)."""
    lines = [line for line in console_lines(text) if line]
    if not lines or not PROMPT_END.search(lines[-1]):
        return ""
    start = len(lines) - 1
    while start > 0 and CHOICE.fullmatch(lines[start - 1]):
        start -= 1
    return " / ".join(lines[max(start - 1, 0) :])


def how_it_ended(text: str, status: int | None) -> str:
    if "reboot: Power down" in text:
        return "powered off"
    if "reboot: Restarting system" in text:
        return "rebooted"
    return f"QEMU exited ({status})"


def recover_from(
    iso: Path, disks: list[Path], target: Target, log: Path, marks: Milestones, result: Recovery
) -> None:
    """Boot the ISO on the target's disks until it powers off, or fails, or waits at a
    question; fills result's recover_*, ending, asked, said and phases.

    The console is sampled every 2 s, so each console line gets the host time it appeared
    at (written beside the log as .timed); the phases come from the milestones."""
    virtio, nvme = source.on_controller(disks, target.interface)
    rescue = Machine(
        firmware="bios",
        memory_mib=MEMORY_MIB,
        cdrom=iso,
        boot_order="d",
        disks=virtio,
        nvme_disks=nvme,
        network=False,
    )
    samples: list[tuple[float, int]] = []
    finish = re.compile(f"{marks.done}|{marks.failed}")
    # the Guest's own deadline is a backstop: the loop below stops it first
    with Guest(rescue, deadline=RECOVER_DEADLINE + 900, console_log=log, name="recover") as g:
        changed_at, length = 0.0, -1
        while True:
            text, now = g.output, g.elapsed()
            samples.append((now, len(text)))
            if len(text) != length:
                changed_at, length = now, len(text)
            found = finish.search(text)
            if found or not g.running:
                break
            result.stopped_at = waiting_at(text, now - changed_at)
            if result.stopped_at:
                result.ending = "stopped at a question"
                break
            if now > RECOVER_DEADLINE:
                result.ending = f"killed at the {RECOVER_DEADLINE:.0f} s deadline"
                break
            time.sleep(2)
        result.recover_done_s = g.elapsed()
        if found and re.fullmatch(marks.done, found.group(0)):
            status = g.wait_exit(600)
            if status is None:
                result.ending = "said done, then did not end within 600 s"
            else:
                result.finished = True
                result.ending = how_it_ended(g.output, status)
        elif found:  # failed: what it shows next is for a person (ReaR: a `select` menu)
            time.sleep(20)
            result.stopped_at = last_prompt(g.output)
            result.ending = "failed; stopped at a question" if result.stopped_at else "failed"
        elif not result.ending:
            result.ending = f"{how_it_ended(g.output, g.wait_exit(30))} before it said done"
        g.kill()
        result.recover_wall_s = g.elapsed()
        text = g.output
    timed = timed_lines(text, samples)
    log.with_suffix(".timed").write_text("".join(f"{t:8.1f} {line}\n" for t, line in timed))
    result.asked = [f"{prompt} -> {answer!r}" for prompt, answer in questions(text)]
    said = re.compile(marks.said)
    shown = {prompt for prompt, _ in questions(text)}
    for line in dict.fromkeys(console_lines(text)):  # each line once, in order
        if said.search(line) and line not in shown and not CHOICE.fullmatch(line):
            result.said.append(line)
    del result.said[SAID_MAX:]
    if result.finished:
        result.phases = phases(timed, marks, result.recover_done_s, result.recover_wall_s)


def timed_lines(text: str, samples: list[tuple[float, int]]) -> list[tuple[float, str]]:
    """Each console line with the first sample time at which it was complete."""
    result = []
    offset, index = 0, 0
    for line in text.replace("\r", "").split("\n"):
        offset += len(line) + 1
        while index < len(samples) - 1 and samples[index][1] < offset - 1:
            index += 1
        result.append((samples[index][0] if samples else 0.0, line))
    return result


def phases(
    timed: list[tuple[float, str]], marks: Milestones, done: float, wall: float
) -> dict[str, float]:
    """Host seconds of: boot to the tool, verify + layout, restore, finalize, power-off."""

    def first(pattern: str) -> float | None:
        regex = re.compile(pattern)
        return next((t for t, line in timed if regex.search(line)), None)

    start, restore, restored = first(marks.start), first(marks.restore), first(marks.restored)
    result: dict[str, float] = {}
    if start is not None:
        result["boot to recover start"] = start
        if restore is not None:
            result["verify + layout recreation"] = restore - start
            if restored is not None:
                result["restore"] = restored - restore
                result["finalize (boot loader, initramfs)"] = done - restored
    result["done to power-off"] = wall - done
    return result


def recover_and_boot(
    machine: source.SourceMachine,
    iso: Path,
    target: Target,
    where: Path,
    marks: Milestones,
    result: Recovery,
) -> Path | None:
    """Recover onto the target's blank disks, then boot what was recovered with the
    collecting job; its logs directory, None when the disks were not booted or did not boot."""
    disks = blank_disks(machine, target, where)
    print(f"{result.target}: unattended recovery onto {target.what}", flush=True)
    recover_from(iso, disks, target, where / "recover-console.log", marks, result)
    print(f"{result.target}: {result.ending} after {result.recover_wall_s:.0f} s", flush=True)
    if not result.finished:
        result.notes.append("the recovered disks were not booted: the recovery did not finish")
        return None
    job = where / "job-recovered"
    write_job(job, COLLECT_JOB)
    try:
        run_job(
            machine,
            disks,
            job,
            where / "recovered-console.log",
            result.notes,
            interface=target.interface,
            deadline=BOOT_DEADLINE,
        )
    except (GuestError, RuntimeError) as error:
        result.notes.append(f"the recovered disks do not boot: {str(error).splitlines()[0]}")
        return None
    result.booted = True
    return job / "logs"


# -- ReaR ---------------------------------------------------------------------------------------


def rear_packages() -> list[str]:
    """The packages apt would install into the source machine for ReaR (no recommends)."""
    status = source.base_tree() / "root/var/lib/dpkg/status"
    out = run(
        ["apt-get", "-s", "-o", f"Dir::State::status={status}", "--no-install-recommends",
         "install", *REAR_PACKAGES],
        what="asking apt what rear needs in the source machine",
    ).stdout  # fmt: skip
    return [m.group(1) for m in re.finditer(r"^Inst (\S+)", out, re.MULTILINE)]


def fetch_debs(names: list[str], into: Path) -> None:
    into.mkdir(parents=True, exist_ok=True)
    run(["apt-get", "download", *names], cwd=into, what="downloading rear and its dependencies")


def deb_version(debs: Path, name: str) -> str:
    (deb,) = debs.glob(f"{name}_*.deb")
    return run(["dpkg-deb", "-f", str(deb), "Version"]).stdout.strip()


def rear_cache_dir(machine: source.SourceMachine, version: str) -> Path:
    digest = hashlib.sha256(
        json.dumps([REAR_CONF, REAR_MKBACKUP_JOB, MEMORY_MIB]).encode()
    ).hexdigest()[:12]
    return CACHE / f"rear-{machine.directory.name}-{version}-{digest}"


LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+) (.*)$")


def rear_log_times(text: str) -> list[tuple[float, str]]:
    result = []
    for line in text.splitlines():
        found = LOG_LINE.match(line)
        if found:
            stamp = datetime.strptime(found.group(1)[:26], "%Y-%m-%d %H:%M:%S.%f")
            result.append((stamp.timestamp(), found.group(2)))
    return result


def rear_stages(text: str) -> dict[str, float]:
    """Each stage's seconds from `Running 'STAGE' stage` lines (the last runs to the log's end)."""
    lines = rear_log_times(text)
    starts = [(t, m.group(1)) for t, msg in lines if (m := re.match(r"Running '(\S+)' stage", msg))]
    stages: dict[str, float] = {}
    for (t, name), (t_next, _) in zip(starts, [*starts[1:], (lines[-1][0], "")], strict=True):
        stages[name] = stages.get(name, 0.0) + t_next - t
    return stages


def rear_restore(text: str) -> tuple[float, float]:
    """(MiB restored, MiB/s) from its 'Restored N MiB in S seconds [avg. K KiB/sec]' line."""
    found = re.findall(r"Restored (\d+) MiB in (\d+) seconds \[avg\. (\d+) KiB/sec\]", text)
    if not found:
        return 0.0, 0.0
    mib, _seconds, kib_s = found[-1]
    return float(mib), int(kib_s) / 1024


def rear_backup(machine: source.SourceMachine, work: Path, fresh: bool) -> tuple[Side, Path, Path]:
    """ReaR installed in the source and its `mkbackup`: (side, its ISO, its cache directory).
    The ISO serves every target; from the cache when it has one."""
    debs = work / "job-mkbackup" / "debs"
    fetch_debs(rear_packages(), debs)
    cache = rear_cache_dir(machine, deb_version(debs, "rear"))
    iso_name = f"rear-{hostname()}.iso"
    if not fresh and (cache / "mkbackup.json").exists() and (cache / iso_name).exists():
        side = Side(**json.loads((cache / "mkbackup.json").read_text()))
        side.notes.append(f"mkbackup and its ISO from the cache {cache}")
        return side, cache / iso_name, cache
    side = Side("ReaR 2.7")
    job = work / "job-mkbackup"
    write_job(job, REAR_MKBACKUP_JOB.replace("@MIRROR_HOST@", mirror_host()))
    (job / "local.conf").write_text(REAR_CONF)
    disks = machine.overlays(work / "source")
    print("ReaR: installing rear in the source and running `rear -v mkbackup`", flush=True)
    marks = run_job(machine, disks, job, work / "rear-mkbackup-console.log", side.notes)
    side.mkbackup_s = marks["mkbackup-end"] - marks["mkbackup-start"]
    side.notes.append(
        f"guest reaches the Debian mirror: {(job / 'mirror.txt').read_text().strip()}"
    )
    iso = job / "rear" / iso_name
    side.iso_bytes = iso.stat().st_size
    print(f"ReaR: mkbackup {side.mkbackup_s:.0f} s, ISO {side.iso_bytes / MiB:.0f} MiB", flush=True)
    cache.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(iso, cache / iso.name)
    shutil.copyfile(work / "rear-mkbackup-console.log", cache / "rear-mkbackup-console.log")
    (cache / "mkbackup.json").write_text(json.dumps(asdict(side), indent=1) + "\n")
    shutil.rmtree(work / "source", ignore_errors=True)  # the overlays: the source is done
    return side, cache / iso_name, cache


def rear_recover(
    machine: source.SourceMachine, iso: Path, target: Target, work: Path, cache: Path, fresh: bool
) -> Recovery:
    """ReaR's unattended recovery onto the target, cached beside its ISO (by the target and
    how it is measured)."""
    digest = hashlib.sha256(
        json.dumps([asdict(target), COLLECT_JOB, RECOVER_DEADLINE, QUESTION_IDLE_S]).encode()
    ).hexdigest()[:12]
    cached = cache / f"recover-{target.name}-{digest}"
    if not fresh and (cached / "result.json").exists():
        result = Recovery(**json.loads((cached / "result.json").read_text()))
        result.notes.append(f"from the cache {cached}")
        return result
    result = Recovery(target.name)
    where = work / target.name
    logs = recover_and_boot(machine, iso, target, where, REAR_MILESTONES, result)
    if result.finished:
        result.notes.append(
            "recover wall time includes ReaR's fixed 30 s ISOLINUX timeout and its 30 s sleep "
            "before the reboot"
        )
    recover_log = rear_recover_log(logs) if logs else None
    if recover_log:
        text = recover_log.read_text(errors="replace")
        result.stages = rear_stages(text)
        result.restored_mib, result.restore_mib_s = rear_restore(text)
        result.notes.append(user_input_calls(text))
    elif logs:
        result.notes.append(f"no recover log found on the recovered disks ({logs})")
    cached.mkdir(parents=True, exist_ok=True)
    for log in where.glob("*console.*"):
        shutil.copyfile(log, cached / f"rear-{log.name}")
    if recover_log:
        shutil.copyfile(recover_log, cached / "rear-recover.log")
    (cached / "result.json").write_text(json.dumps(asdict(result), indent=1) + "\n")
    for disk in where.glob("blank*.img"):  # up to 9 GiB each; the logs are what is kept
        disk.unlink()
    return result


def rear_recover_log(logs: Path) -> Path | None:
    """ReaR's log of the recovery, as it copied it onto the recovered system."""
    found = sorted(logs.glob("rear/recover/**/rear-*.log")) or sorted(
        p for p in logs.glob("rear/**/*.log") if "recover" in p.read_text(errors="replace")[:20000]
    )
    return found[-1] if found else None


def user_input_calls(text: str) -> str:
    """Which of ReaR's scripts asked, from its log's `UserInput: called in SCRIPT` lines."""
    callers = [Path(c).name for c in re.findall(r"UserInput: called in (\S+)", text)]
    timed_out = text.count("UserInput: 'read' timed out")
    counted = ", ".join(f"{name} x{n}" for name, n in collections.Counter(callers).items())
    return f"its log: {len(callers)} UserInput calls ({counted or 'none'}), {timed_out} timed out"


def mirror_host() -> str:
    return source.debian_mirror().split("://", 1)[-1].split("/", 1)[0]


def hostname() -> str:
    return "srcmachine"  # tests/e2e/source.py names every source machine so


# -- mkmedia ------------------------------------------------------------------------------------

STEP_LINE = re.compile(r"step (\S+) took ([\d.]+) s")
RESTORED = re.compile(r"restored (\d+) files, ([\d.]+) GiB into \S+ in ([\d.]+) s \((\d+) MiB/s\)")


def mkmedia_stages(text: str) -> dict[str, float]:
    """Seconds per stage, summed from the engine's `step STAGE/STEP took S s` lines."""
    stages: dict[str, float] = {}
    for label, seconds in STEP_LINE.findall(text):
        stage = label.split("/", 1)[0]
        stages[stage] = stages.get(stage, 0.0) + float(seconds)
    return stages


def recover_ready(tree: Path) -> bool:
    """features.RECOVER.ready of the checkout `tree` (not necessarily this one)."""
    out = run(
        [
            sys.executable,
            "-c",
            "from rescue_runtime import features; print(features.RECOVER.ready)",
        ],
        cwd=tree,  # the script directory (here: cwd) comes first on sys.path
        what="asking the staged checkout whether recover is ready",
    ).stdout
    return out.strip() == "True"


def mkmedia_backup(
    machine: source.SourceMachine, work: Path, tree: Path
) -> tuple[Side, Path | None]:
    """`mkmedia mkbackup` in the source: (side, its ISO), the ISO None while recover is not
    ready in that checkout (its menu has no "unattended" entry then)."""
    side = Side("mkmedia" if tree == REPO else f"mkmedia ({tree})")
    job = work / "job-mkbackup-mkmedia"
    shutil.rmtree(job, ignore_errors=True)
    job.mkdir(parents=True)
    stage_mkmedia(job, tree)
    ready = recover_ready(tree)
    script = MKMEDIA_MKBACKUP_JOB.replace("@MKBACKUP@", mkmedia_command("mkbackup"))
    write_job(job, script.replace("@BOOT_DEFAULT@", "unattended" if ready else "rescue"))
    disks = machine.overlays(work / "source-mkmedia")
    print("mkmedia: `mkmedia mkbackup` in the source", flush=True)
    marks = run_job(machine, disks, job, work / "mkmedia-mkbackup-console.log", side.notes)
    side.mkbackup_s = marks["mkbackup-end"] - marks["mkbackup-start"]
    manifest = json.loads(next((job / "out").glob("*/manifest.json")).read_text())
    (iso_name,) = [Path(a["path"]).name for a in manifest["artifacts"] if a["kind"] == "iso"]
    (iso,) = (job / "out").glob(f"*/{iso_name}")
    side.iso_bytes = iso.stat().st_size
    print(
        f"mkmedia: mkbackup {side.mkbackup_s:.0f} s, ISO {side.iso_bytes / MiB:.0f} MiB", flush=True
    )
    shutil.rmtree(work / "source-mkmedia", ignore_errors=True)
    if not ready:
        side.notes.append("mkmedia recover is not ready in this version: mkbackup measured alone")
        return side, None
    return side, iso


def mkmedia_recover(
    machine: source.SourceMachine, iso: Path, target: Target, work: Path
) -> Recovery:
    result = Recovery(target.name)
    where = work / target.name
    logs = recover_and_boot(machine, iso, target, where, MKMEDIA_MILESTONES, result)
    found_logs = sorted(logs.glob("mkmedia/**/*recover*")) if logs else []
    texts = [p.read_text(errors="replace") for p in found_logs]
    texts.append((where / "recover-console.log").read_text(errors="replace"))
    for text in texts:
        if not result.stages:
            result.stages = mkmedia_stages(text)
        found = RESTORED.findall(text)
        if found and not result.restore_mib_s:
            _files, gib, _seconds, rate = found[-1]
            result.restored_mib, result.restore_mib_s = float(gib) * 1024, float(rate)
    for disk in where.glob("blank*.img"):
        disk.unlink()
    return result


# -- report -------------------------------------------------------------------------------------


def show(side: Side) -> None:
    print(f"\n{side.name}")
    print(f"  mkbackup            {side.mkbackup_s:8.1f} s")
    print(f"  ISO                 {side.iso_bytes / MiB:8.1f} MiB")
    for note in side.notes:
        print(f"  note: {note}")


def show_recovery(result: Recovery) -> None:
    print(f"\n  onto {result.target}: {TARGETS[result.target].what}")
    print(f"    recover, wall       {result.recover_wall_s:8.1f} s  (QEMU start to exit)")
    print(f"    recover, to 'done'  {result.recover_done_s:8.1f} s")
    for phase, seconds in result.phases.items():
        print(f"      {phase:<36}{seconds:8.1f} s  (console, host clock)")
    for stage, seconds in result.stages.items():
        print(f"      {stage:<36}{seconds:8.1f} s  (its own log, guest clock)")
    print(
        f"    restore             {result.restore_mib_s:8.1f} MiB/s ({result.restored_mib:.0f} MiB)"
    )
    print(f"    finished unattended: {'yes' if result.finished else 'no'} ({result.ending})")
    if result.stopped_at:
        print(f"    stopped at a question: {result.stopped_at}")
    print(f"    recovered disks boot: {'yes' if result.booted else 'no'}")
    for question in result.asked:
        print(f"    asked (its timeout took the default): {question}")
    for line in result.said:
        print(f"    said: {line}")
    for note in result.notes:
        print(f"    note: {note}")


def table(sides: list[Side], targets: list[Target]) -> None:
    """One row per target and tool; the long texts are in show()'s sections above."""
    header = (
        f"{'target':<12} {'tool':<10} {'wall s':>7} {'done s':>7} {'MiB/s':>6} "
        f"{'unattended':<10} {'ended':<30} {'boots':<5} {'asked':>5}"
    )
    print(f"\n{header}\n{'-' * len(header)}")
    for target in targets:
        for side in sides:
            result = side.recoveries.get(target.name)
            if result is None:
                continue
            ended = result.ending if len(result.ending) <= 30 else result.ending[:29] + "…"
            print(
                f"{target.name:<12} {side.name[:10]:<10} {result.recover_wall_s:7.0f} "
                f"{result.recover_done_s:7.0f} {result.restore_mib_s:6.1f} "
                f"{'yes' if result.finished else 'no':<10} {ended:<30} "
                f"{'yes' if result.booted else 'no':<5} {len(result.asked):5d}"
            )
    print("(asked: questions a timeout answered with their default; nobody typed anything)")
    if len(sides) == 2:
        for target in targets:
            first, second = (side.recoveries.get(target.name) for side in sides)
            if first and second and first.finished and second.finished:
                times = ratio(first.recover_wall_s, second.recover_wall_s)
                print(
                    f"recover wall time {sides[0].name} / {sides[1].name} onto {target.name}: "
                    f"{times.strip()}"
                )


def ratio(a: float, b: float) -> str:
    return f"{a / b:6.2f}" if a and b else "     -"


def compare(rear: Side, ours: Side, target: str) -> None:
    theirs, mine = rear.recoveries[target], ours.recoveries[target]
    print(
        f"\nReaR / mkmedia onto {target} (aims: recover >= 3, restore throughput mkmedia/ReaR >= 3)"
    )
    print(f"  mkbackup time       {ratio(rear.mkbackup_s, ours.mkbackup_s)}")
    print(f"  ISO size            {ratio(rear.iso_bytes, ours.iso_bytes)}")
    print(f"  recover wall time   {ratio(theirs.recover_wall_s, mine.recover_wall_s)}")
    print(
        f"  restore throughput  {ratio(mine.restore_mib_s, theirs.restore_mib_s)} (mkmedia / ReaR)"
    )
    for phase, seconds in theirs.phases.items():
        print(f"  {phase:<36}{ratio(seconds, mine.phases.get(phase, 0.0))}")


@contextmanager
def workdir(given: Path | None) -> Iterator[Path]:
    if given:
        given.mkdir(parents=True, exist_ok=True)
        yield given
        return
    path = Path(tempfile.mkdtemp(prefix="mkmedia-bench-recover-", dir="/var/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--only", choices=("rear", "mkmedia"), help="measure one side only")
    parser.add_argument("--fresh-rear", action="store_true", help="ignore ReaR's cached results")
    parser.add_argument(
        "--target",
        action="append",
        choices=list(TARGETS),
        help="the disks to recover onto, repeatable, in this order (default: same): "
        # argparse formats help with %: the targets' "50 %"
        + "; ".join(f"{t.name}: {t.what}" for t in TARGETS.values()).replace("%", "%%"),
    )
    parser.add_argument("--workdir", type=Path, help="keep the ISOs and logs here")
    parser.add_argument(
        "--tree",
        type=Path,
        default=REPO,
        help="stage mkmedia from this checkout (default: this one)",
    )
    args = parser.parse_args(argv)
    targets = [TARGETS[name] for name in dict.fromkeys(args.target or ["same"])]
    machine = source.source_machine(MACHINE)
    with workdir(args.workdir) as work:
        started = time.monotonic()
        # One backup per side, then the targets one by one, both sides each: an interrupted
        # run still has both sides of its first targets.
        recoveries: list[tuple[Side, Callable[[Target], Recovery]]] = []
        if args.only != "mkmedia":
            rear, rear_iso, cache = rear_backup(machine, work / "rear", args.fresh_rear)
            recoveries.append(
                (
                    rear,
                    lambda t: rear_recover(
                        machine, rear_iso, t, work / "rear", cache, args.fresh_rear
                    ),
                )
            )
        if args.only != "rear":
            ours, our_iso = mkmedia_backup(machine, work / "mkmedia", args.tree.resolve())
            if our_iso is not None:
                iso = our_iso
                recoveries.append(
                    (ours, lambda t: mkmedia_recover(machine, iso, t, work / "mkmedia"))
                )
            else:
                show(ours)
        sides = [side for side, _ in recoveries]
        for target in targets:
            for side, recover in recoveries:
                print(f"\n{side.name} onto {target.name}", flush=True)
                side.recoveries[target.name] = recover(target)
                show_recovery(side.recoveries[target.name])
        for side in sides:
            show(side)
        table(sides, targets)
        if len(sides) == 2 and "same" in sides[0].recoveries:
            compare(sides[0], sides[1], "same")
        print(f"\n(bench took {time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
