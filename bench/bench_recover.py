"""Unattended bare-metal recovery of the BIOS + LVM source machine: mkmedia against ReaR 2.7.

    python -m bench recover                     # both sides (ReaR from its cache when it has it)
    python -m bench.bench_recover --only rear   # one side
    python -m bench.bench_recover --fresh-rear  # measure ReaR again, ignoring its cache

Both sides in the same way, on qcow2 overlays of the same source machine (tests/e2e/source.py):
install or stage the tool in the source, `mkbackup` with BACKUP=NETFS and BACKUP_URL=iso:///backup
(the backup inside the rescue ISO), take the ISO out on the job share, boot it with SeaBIOS on
blank disks of the source's size, let it recover with nobody at the keyboard until it powers off
(ReaR: reboots, which QEMU's -no-reboot turns into an exit), then boot the recovered disks and
collect the recovery log from them (the machine's job service runs: it booted). Printed: per
side the mkbackup time, ISO size, recover wall time (QEMU start to exit), each stage's time and
the restore throughput; then ReaR / mkmedia. Software emulation: absolute seconds depend on the
machine and its load; the ratios are what to compare. Nothing is asserted.

ReaR is Debian 12's `rear` package with what it needs that the source lacks, taken with the
host's apt (`apt-get download`, the versions apt would install into the source) and installed
with dpkg in the guest. Its results and ISO are cached under CACHE keyed by the source
machine, the rear package version and the configuration below: ReaR does not change between
our commits.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from mkmedia.qemu import Guest, Machine
from rescue_runtime.run import run
from tests.conftest import REPO
from tests.e2e import source
from tests.e2e.guest_mkmedia import mkmedia_command, stage_mkmedia

CACHE = Path(os.environ.get("MKMEDIA_BENCH_CACHE", "/var/tmp/mkmedia-bench-cache"))
MACHINE = "bios-lvm"
MEMORY_MIB = 1536  # every guest of both sides
RECOVER_DEADLINE = 3600.0
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


@dataclass
class Side:
    """What one tool did; seconds are host wall time unless the name says otherwise."""

    name: str
    mkbackup_s: float = 0.0
    iso_bytes: int = 0
    recover_wall_s: float = 0.0  # QEMU start on the blank disks to its exit
    recover_done_s: float = 0.0  # QEMU start to the tool saying it is done
    stages: dict[str, float] = field(default_factory=dict)  # from the tool's own log
    phases: dict[str, float] = field(default_factory=dict)  # host-timed console milestones
    restore_mib_s: float = 0.0
    restored_mib: float = 0.0
    booted: bool = False
    notes: list[str] = field(default_factory=list)


# -- shared machinery ---------------------------------------------------------------------------


def write_job(job: Path, script: str, *, poweroff: bool = True) -> None:
    job.mkdir(parents=True, exist_ok=True)
    (job / "run.sh").write_text(script)
    (job / "run.sh").chmod(0o755)
    if poweroff:
        (job / "poweroff").touch()


def run_job(
    machine: source.SourceMachine, disks: list[Path], job: Path, log: Path, notes: list[str]
) -> dict[str, float]:
    """Boot the source (or recovered) disks with this job; the host times of its marks.

    On a loaded 2-core host udev can take longer than systemd's 90 s device timeout, and the
    machine stops in emergency mode before the job service. Its root has no password: the
    emergency shell on the serial console mounts what is there and runs the job by hand."""
    marks: dict[str, float] = {}
    with source.boot_source(machine, disks, job, console_log=log, deadline=RECOVER_DEADLINE) as g:
        pattern = rf"{MARK} (\S+)|MKMEDIA-JOB-END rc=(\d+)|{EMERGENCY}"
        while True:
            found = g.expect(pattern, timeout=RECOVER_DEADLINE)
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


def blank_disks(machine: source.SourceMachine, into: Path) -> list[Path]:
    disks = []
    for i, size in enumerate(machine.spec.disks_mib):
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


REAR_MILESTONES = Milestones(
    start=r"Running workflow recover",
    restore=r"Preparing to restore|Restoring from",
    restored=r"Restored \d+ MiB in \d+ seconds",
    done=re.escape(REAR_DONE),
    failed=re.escape(REAR_FAILED),
)
MKMEDIA_MILESTONES = Milestones(
    start=re.escape("mkmedia init: unattended recovery starting"),
    restore=r"^restore/\d+_",
    restored=r"^finalize/\d+_",
    done=re.escape(MKMEDIA_DONE),
    failed=re.escape(MKMEDIA_FAILED),
)


def recover_from(iso: Path, disks: list[Path], log: Path, marks: Milestones, side: Side) -> None:
    """Boot the ISO on the disks until it powers off; fills side's recover_* and phases.

    The console is sampled every 2 s, so each console line gets the host time it appeared
    at (written beside the log as .timed); the phases come from the milestones."""
    rescue = Machine(
        firmware="bios",
        memory_mib=MEMORY_MIB,
        cdrom=iso,
        boot_order="d",
        disks=disks,
        network=False,
    )
    samples: list[tuple[float, int]] = []
    finish = re.compile(f"{marks.done}|{marks.failed}")
    with Guest(rescue, deadline=RECOVER_DEADLINE, console_log=log, name="recover") as g:
        while True:
            text = g.output
            samples.append((g.elapsed(), len(text)))
            found = finish.search(text)
            if found or not g.running:
                break
            time.sleep(2)
        if not found or re.fullmatch(marks.failed, found.group(0)):
            raise RuntimeError(f"unattended recovery failed; console {log}:\n{g.tail(40)}")
        side.recover_done_s = g.elapsed()
        if g.wait_exit(600) is None:
            raise RuntimeError(f"the recovery guest did not power off; console {log}")
        side.recover_wall_s = g.elapsed()
        text = g.output
    timed = timed_lines(text, samples)
    log.with_suffix(".timed").write_text("".join(f"{t:8.1f} {line}\n" for t, line in timed))
    side.phases = phases(timed, marks, side.recover_done_s, side.recover_wall_s)


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


def boot_recovered(
    machine: source.SourceMachine, disks: list[Path], work: Path, notes: list[str]
) -> Path:
    """Boot the recovered disks with the collecting job; its logs directory."""
    job = work / "job-recovered"
    write_job(job, COLLECT_JOB)
    run_job(machine, disks, job, work / "recovered-console.log", notes)
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


def measure_rear(machine: source.SourceMachine, work: Path, fresh: bool) -> Side:
    debs = work / "job-mkbackup" / "debs"
    fetch_debs(rear_packages(), debs)
    cache = rear_cache_dir(machine, deb_version(debs, "rear"))
    if not fresh and (cache / "result.json").exists():
        side = Side(**json.loads((cache / "result.json").read_text()))
        side.notes.append(f"from the cache {cache}")
        return side
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
    iso = job / "rear" / f"rear-{hostname()}.iso"
    side.iso_bytes = iso.stat().st_size
    print(f"ReaR: mkbackup {side.mkbackup_s:.0f} s, ISO {side.iso_bytes / MiB:.0f} MiB", flush=True)
    blank = blank_disks(machine, work)
    print("ReaR: unattended recovery on blank disks", flush=True)
    recover_from(iso, blank, work / "rear-recover-console.log", REAR_MILESTONES, side)
    side.notes.append(
        "recover wall time includes ReaR's fixed 30 s ISOLINUX timeout and its 30 s sleep "
        "before the reboot"
    )
    print(
        f"ReaR: recovered in {side.recover_wall_s:.0f} s; booting the recovered disks", flush=True
    )
    logs = boot_recovered(machine, blank, work, side.notes)
    side.booted = True
    recover_logs = sorted(logs.glob("rear/recover/**/rear-*.log")) or sorted(
        p for p in logs.glob("rear/**/*.log") if "recover" in p.read_text(errors="replace")[:20000]
    )
    if recover_logs:
        text = recover_logs[-1].read_text(errors="replace")
        side.stages = rear_stages(text)
        side.restored_mib, side.restore_mib_s = rear_restore(text)
    else:
        side.notes.append(f"no recover log found on the recovered disks ({logs})")
    cache.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(iso, cache / iso.name)
    for name in ("rear-recover-console.log", "rear-mkbackup-console.log"):
        shutil.copyfile(work / name, cache / name)
    if recover_logs:
        shutil.copyfile(recover_logs[-1], cache / "rear-recover.log")
    (cache / "result.json").write_text(json.dumps(asdict(side), indent=1) + "\n")
    return side


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


def measure_mkmedia(machine: source.SourceMachine, work: Path, tree: Path) -> Side:
    side = Side("mkmedia" if tree == REPO else f"mkmedia ({tree})")
    job = work / "job-mkbackup-mkmedia"
    shutil.rmtree(job, ignore_errors=True)
    job.mkdir(parents=True)
    stage_mkmedia(job, tree)
    # While recover is not ready, the menu has no "unattended" entry: measure mkbackup alone.
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
    if not ready:
        side.notes.append("mkmedia recover is not ready in this version: mkbackup measured alone")
        return side
    blank_dir = work / "mkmedia-blank"
    blank_dir.mkdir(exist_ok=True)
    blank = blank_disks(machine, blank_dir)
    print("mkmedia: unattended recovery on blank disks", flush=True)
    recover_from(iso, blank, work / "mkmedia-recover-console.log", MKMEDIA_MILESTONES, side)
    print(
        f"mkmedia: recovered in {side.recover_wall_s:.0f} s; booting the recovered disks",
        flush=True,
    )
    logs = boot_recovered(machine, blank, work / "mkmedia-recovered", side.notes)
    side.booted = True
    texts = [p.read_text(errors="replace") for p in sorted(logs.glob("mkmedia/**/*recover*"))]
    texts.append((work / "mkmedia-recover-console.log").read_text(errors="replace"))
    for text in texts:
        if not side.stages:
            side.stages = mkmedia_stages(text)
        found = RESTORED.findall(text)
        if found and not side.restore_mib_s:
            _files, gib, _seconds, rate = found[-1]
            side.restored_mib, side.restore_mib_s = float(gib) * 1024, float(rate)
    return side


# -- report -------------------------------------------------------------------------------------


def show(side: Side) -> None:
    print(f"\n{side.name}")
    print(f"  mkbackup            {side.mkbackup_s:8.1f} s")
    print(f"  ISO                 {side.iso_bytes / MiB:8.1f} MiB")
    print(f"  recover, wall       {side.recover_wall_s:8.1f} s  (QEMU start to exit)")
    print(f"  recover, to 'done'  {side.recover_done_s:8.1f} s")
    for phase, seconds in side.phases.items():
        print(f"    {phase:<36}{seconds:8.1f} s  (console, host clock)")
    for stage, seconds in side.stages.items():
        print(f"    {stage:<36}{seconds:8.1f} s  (its own log, guest clock)")
    print(f"  restore             {side.restore_mib_s:8.1f} MiB/s ({side.restored_mib:.0f} MiB)")
    print(f"  recovered disks boot: {'yes' if side.booted else 'no'}")
    for note in side.notes:
        print(f"  note: {note}")


def ratio(a: float, b: float) -> str:
    return f"{a / b:6.2f}" if a and b else "     -"


def compare(rear: Side, ours: Side) -> None:
    print("\nReaR / mkmedia (aims: recover >= 3, restore throughput mkmedia/ReaR >= 3)")
    print(f"  mkbackup time       {ratio(rear.mkbackup_s, ours.mkbackup_s)}")
    print(f"  ISO size            {ratio(rear.iso_bytes, ours.iso_bytes)}")
    print(f"  recover wall time   {ratio(rear.recover_wall_s, ours.recover_wall_s)}")
    print(f"  restore throughput  {ratio(ours.restore_mib_s, rear.restore_mib_s)} (mkmedia / ReaR)")
    for phase, seconds in rear.phases.items():
        print(f"  {phase:<36}{ratio(seconds, ours.phases.get(phase, 0.0))}")


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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("rear", "mkmedia"), help="measure one side only")
    parser.add_argument("--fresh-rear", action="store_true", help="ignore ReaR's cached results")
    parser.add_argument("--workdir", type=Path, help="keep the disks, ISOs and logs here")
    parser.add_argument(
        "--tree",
        type=Path,
        default=REPO,
        help="stage mkmedia from this checkout (default: this one)",
    )
    args = parser.parse_args(argv)
    machine = source.source_machine(MACHINE)
    sides: dict[str, Side] = {}
    with workdir(args.workdir) as work:
        started = time.monotonic()
        if args.only != "mkmedia":
            sides["rear"] = measure_rear(machine, work / "rear", args.fresh_rear)
            show(sides["rear"])
        if args.only != "rear":
            sides["mkmedia"] = measure_mkmedia(machine, work / "mkmedia", args.tree.resolve())
            show(sides["mkmedia"])
        if len(sides) == 2:
            compare(sides["rear"], sides["mkmedia"])
        print(f"\n(bench took {time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
