"""Where a restore's time goes, inside the rescue system booted from the BIOS + LVM source's
backup ISO: each part of the data path alone, ReaR 2.7's restore of the same data, and our own.

    python -m bench restore
    python -m bench.bench_restore --iso DIR/backup.iso   # an ISO made before (kept as it is)
    python -m bench.bench_restore --cache DIR            # make the ISO once into DIR, reuse it

The ISO is `mkmedia mkbackup` inside the source machine (tests/e2e/cycle.py backup_on_source,
BACKUP_URL=iso:///backup). Its rescue kernel boots (the "rescue" menu entry) on a blank disk of
the source's size, with the recovery's memory and vCPUs (tests/e2e/cycle.py), the ISO as its
CD and, as a second CD, the same tar stream compressed as ReaR 2.7 makes it (`tar --gzip`).
In that one boot, each row a shell command, the page cache dropped before each:

- the CD alone (`dd bs=1M`) and through `zstd -d`: the ceiling of any restore from it;
- verify's checksum pass (mkmedia's own sha256 of the volume);
- onto file systems recreated before each row (`mkmedia layoutonly --restart`, not timed):
  ReaR 2.7's restore command on the gzip copy, `zstd -d | tar -x` with tar's default 10 KiB
  records (how restore read it before), the same as Netfs.restore runs it now, and
  `mkmedia restoreonly` (verify, then restore, as recover runs them: the restore reads what
  the verify pass left in the page cache).

Each row gets the guest's clock and the host CPU seconds QEMU used (on a shared machine the
second hardly depends on the load). Throughput is of the tar stream (the manifest's bytes, as
recover and ReaR report it), with each row's time as a multiple of the ceiling's. Software
emulation: absolute seconds depend on the machine and its load; compare the ratios. Nothing
is asserted.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.bench_backup import REAR_RESTORE
from mkmedia.qemu import Guest, Machine
from rescue_runtime.backup.archive import TAR_METADATA, TAR_READ
from rescue_runtime.backup.netfs import VOLUME_NAME
from rescue_runtime.run import pipeline, run, run_bytes
from tests.e2e import cycle, source
from tests.rescue_build import BOOT_TIMEOUT, PROMPT

MACHINE = "bios-lvm"
MiB = 1 << 20
ROW_TIMEOUT = 3600.0
CD = "/run/bench-cd"
VOLUME = f"{CD}/backup/{VOLUME_NAME}"
REAR_CD = "/run/bench-rear-cd"
REAR_ARCHIVE = f"{REAR_CD}/backup/backup.tar.gz"
TARGET = "/mnt/local"
RECREATE = (
    f"if findmnt {TARGET} >/dev/null; then umount -R {TARGET}; fi; "
    "vgchange -q -an >/dev/null 2>&1 || true; "
    "mkmedia layoutonly --restart > /tmp/layoutonly.log 2>&1 "
    "|| { tail -20 /tmp/layoutonly.log; false; }"
)
CHECKSUM = (
    "python3 -c 'import sys; from rescue_runtime.backup.manifest import sha256_file; "
    f"print(sha256_file(sys.argv[1]))' {VOLUME}"
)
CEILING = "CD read + zstd -d: the ceiling"
PRODUCT = "mkmedia restoreonly: its restore"
REAR = "ReaR 2.7's restore command (gzip copy)"
# what `mkmedia restoreonly` says about its two passes (recover/verify.py, recover/stages.py)
VERIFIED = re.compile(r"checksums verified in ([\d.]+) s")
RESTORED = re.compile(r"restored \d+ files, [\d.]+ GiB into \S+ in ([\d.]+) s")


@dataclass(frozen=True)
class Row:
    name: str
    command: str
    fresh_fs: bool = False  # recreate the target's file systems first (not timed)


@dataclass
class Result:
    seconds: float  # guest clock
    cpu: float | None  # host CPU seconds of QEMU (None: a part of a row, not measured alone)


def rows() -> list[Row]:
    metadata = " ".join(shlex.quote(o) for o in TAR_METADATA)
    extract = f"tar --extract --file=- --directory={TARGET} {metadata} --preserve-permissions"
    index = "--verbose --index-file=/tmp/index"
    zstd = f"zstd -d -q -c < {VOLUME}"
    rear = REAR_RESTORE.format(target=TARGET, archive=REAR_ARCHIVE)
    return [
        Row("CD read (dd bs=1M)", f"dd if={VOLUME} of=/dev/null bs=1M status=none"),
        Row(CEILING, f"zstd -d -q -c {VOLUME} > /dev/null"),
        Row("verify's checksum pass", f"{CHECKSUM} > /dev/null"),
        Row(REAR, f"{rear} > /dev/null; sync", True),
        Row("zstd -d | tar -x, 10 KiB records", f"{zstd} | {extract} {index}; sync", True),
        Row(
            "zstd -d | tar -x as Netfs.restore",
            f"{zstd} | {extract} {' '.join(TAR_READ)} {index}; sync",
            True,
        ),
        Row(
            "mkmedia restoreonly (verify + restore + sync)",
            "mkmedia restoreonly --unattended > /tmp/restoreonly.log 2>&1 "
            "|| { tail -30 /tmp/restoreonly.log; false; }",
            True,
        ),
    ]


def timed(guest: Guest, command: str) -> Result:
    """`command` in the guest with a cold page cache: its seconds and QEMU's CPU seconds."""
    guest.shell("sync; echo 3 > /proc/sys/vm/drop_caches", timeout=600)
    cpu = guest.cpu_seconds()
    status, out = guest.shell(
        f"s=$(date +%s%N); ( {command} ); rc=$?; e=$(date +%s%N); "
        "echo ELAPSED $(( (e - s) / 1000000 )); (exit $rc)",
        timeout=ROW_TIMEOUT,
    )
    found = re.search(r"ELAPSED (\d+)", out)
    if status != 0 or not found:
        raise RuntimeError(f"`{command}` failed in the rescue guest ({status}):\n{out[-3000:]}")
    return Result(int(found.group(1)) / 1000, guest.cpu_seconds() - cpu)


def backup_iso(cache: Path) -> Path:
    """The source's backup ISO in `cache`, made there first when it is not."""
    iso = cache / "backup.iso"
    if iso.exists():
        return iso
    cache.mkdir(parents=True, exist_ok=True)
    machine = source.source_machine(MACHINE, log_dir=cache)
    with tempfile.TemporaryDirectory(prefix="backup-", dir=cache) as work:
        made = cycle.backup_on_source(machine, Path(work))
        shutil.copyfile(made.iso, cache / ".backup.iso.partial")
        (cache / ".backup.iso.partial").rename(iso)
    return iso


def rear_data_iso(iso: Path, cache: Path) -> Path:
    """A data CD holding the backup's tar stream as ReaR compresses it (gzip -6, tar --gzip),
    made once per backup (named by the volume's sha256)."""
    listed = run(["isoinfo", "-R", "-i", iso, "-x", "/backup/backup-manifest.json"]).stdout
    manifest = json.loads(listed)
    made = cache / f"rear-data-{manifest['volumes'][0]['sha256'][:16]}.iso"
    if made.exists():
        return made
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rear-data-", dir=cache) as work:
        volume = Path(work) / VOLUME_NAME
        volume.write_bytes(run_bytes(["isoinfo", "-R", "-i", iso, "-x", f"/backup/{VOLUME_NAME}"]))
        tree = Path(work) / "tree"
        (tree / "backup").mkdir(parents=True)
        pipeline(
            [["zstd", "-d", "-q", "-c"], ["gzip", "-6", "-c"]],
            stdin_path=volume,
            stdout_path=tree / "backup" / "backup.tar.gz",
        )
        partial = cache / f".{made.name}.partial"
        run(["xorriso", "-as", "mkisofs", "-quiet", "-R", "-V", "REARDATA", "-o", partial, tree])
        partial.rename(made)
    return made


@contextmanager
def rescue_guest(iso: Path, work: Path, rear_data: Path | None = None) -> Iterator[Guest]:
    """The rescue system of `iso` at its prompt, the backup's CD mounted on CD (and the ReaR
    copy's on REAR_CD)."""
    machine = source.source_machine(MACHINE)
    kernel, initrd, append = cycle.menu_entry(iso, "rescue", work / "boot")
    disks = cycle.blank_disks(work / "target", machine.spec.disks_mib)
    second_cd = ["-drive", f"file={rear_data},media=cdrom,readonly=on,format=raw"]
    rescue = Machine(
        firmware="bios",
        memory_mib=cycle.MEMORY_MIB,
        cpus=cycle.PIPELINE_CPUS,
        kernel=kernel,
        initrd=initrd,
        append=append,
        cdrom=iso,
        disks=disks,
        network=False,
        extra=second_cd if rear_data else [],
    )
    deadline = BOOT_TIMEOUT + 12 * ROW_TIMEOUT
    with Guest(rescue, deadline=deadline, console_log=work / "rescue.log", name="rescue") as g:
        g.expect(PROMPT, BOOT_TIMEOUT)
        mount = f"mkdir -p {CD} && mount -o ro /dev/sr0 {CD}"
        if rear_data:
            mount += f" && mkdir -p {REAR_CD} && mount -o ro /dev/sr1 {REAR_CD}"
        status, out = g.shell(mount)
        if status != 0:
            raise RuntimeError(f"the CDs did not mount in the rescue guest:\n{out}")
        yield g


def ceiling_mib_s(iso: Path, work: Path) -> float:
    """The tar stream's MiB/s through `zstd -d` straight off the CD, cold (bench_recover)."""
    with rescue_guest(iso, work) as guest:
        stream = stream_bytes(guest)
        return stream / MiB / timed(guest, f"zstd -d -q -c {VOLUME} > /dev/null").seconds


def stream_bytes(guest: Guest) -> int:
    status, out = guest.shell(f"cat {CD}/backup/backup-manifest.json")
    if status != 0:
        raise RuntimeError(f"no backup manifest on the CD:\n{out}")
    return int(json.loads(out)["bytes"])


def report(results: dict[str, Result], stream: int) -> None:
    ceiling = results.get(CEILING)
    print(f"\n{'row':<48}{'s':>8}{'CPU s':>8}{'MiB/s':>8}  x ceiling")
    for name, result in results.items():
        rate = stream / MiB / result.seconds if result.seconds else 0.0
        share = f"{result.seconds / ceiling.seconds:8.2f}" if ceiling else "       -"
        cpu = "-" if result.cpu is None else f"{result.cpu:.1f}"
        print(f"{name:<48}{result.seconds:8.1f}{cpu:>8}{rate:8.1f}  {share}")
    rear, ours = results.get(REAR), results.get(PRODUCT)
    if rear and ours:
        print(f"\nrestore throughput, mkmedia / ReaR (aim >= 3): {rear.seconds / ours.seconds:.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iso", type=Path, help="the backup ISO to boot (made before)")
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path("/var/tmp/mkmedia-bench-cache/restore"),
        help="where the ISOs are made once and reused",
    )
    parser.add_argument("--only", nargs="*", help="run only the rows whose names start so")
    args = parser.parse_args(argv)
    iso = args.iso or backup_iso(args.cache)
    rear_data = rear_data_iso(iso, args.cache)
    chosen = [r for r in rows() if not args.only or any(r.name.startswith(o) for o in args.only)]
    results: dict[str, Result] = {}
    with (
        tempfile.TemporaryDirectory(prefix="mkmedia-bench-restore-", dir="/var/tmp") as tmp,
        rescue_guest(iso, Path(tmp), rear_data) as guest,
    ):
        stream = stream_bytes(guest)
        print(f"backup: {stream / MiB:.0f} MiB tar stream", flush=True)
        for row in chosen:
            if row.fresh_fs:
                timed(guest, RECREATE)
            results[row.name] = timed(guest, row.command)
            print(f"  {row.name:<48}{results[row.name].seconds:8.1f} s", flush=True)
            if row.name.startswith("mkmedia restoreonly"):
                _, said = guest.shell("cat /tmp/restoreonly.log")
                verified, restored = VERIFIED.search(said), RESTORED.search(said)
                if verified and restored:
                    verify_s = float(verified.group(1))
                    results["mkmedia restoreonly: its verify"] = Result(verify_s, None)
                    results[PRODUCT] = Result(float(restored.group(1)), None)
    report(results, stream)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
