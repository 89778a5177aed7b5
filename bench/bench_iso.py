"""Benchmark: mkmedia's ISO build against `xorriso -as mkisofs` of the same tree, same run.

    .venv/bin/python bench/bench_iso.py [--initrd-mib 150] [--payload-files 2000] [--rounds 3]

mkmedia's time is end to end (menus, GRUB image, FAT image, mastering, MBR, sha256); xorriso
masters the tree our ISO holds (extracted once) with the equivalent hybrid boot options and no
checksum, so the ratio slightly favours xorriso. Printed: best-of-N seconds and the ratio.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mkmedia.emit import Artifact
from mkmedia.emit.iso import write_iso
from rescue_runtime.run import run

KERNEL = Path("/boot/vmlinuz-6.1.0-56-amd64")
ISOHDPFX = Path("/usr/lib/ISOLINUX/isohdpfx.bin")


def make_inputs(base: Path, initrd_mib: int, payload_files: int) -> tuple[Path, Path]:
    initrd = base / "initrd.zst"
    with open(initrd, "wb") as stream:  # incompressible, like a compressed initrd
        for _ in range(initrd_mib):
            stream.write(os.urandom(1 << 20))
    payload = base / "payload"
    payload.mkdir()
    for index in range(payload_files):
        directory = payload / f"d{index % 50:02d}"
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"file-{index:05d}.txt").write_bytes(os.urandom(2048 + index % 4096))
    return initrd, payload


def time_sha256(path: Path) -> float:
    start = time.perf_counter()
    Artifact.of(path, "iso")
    return time.perf_counter() - start


def time_mkmedia(base: Path, initrd: Path, payload: Path, round_: int) -> tuple[float, Path]:
    output = base / f"mkmedia-{round_}.iso"
    start = time.perf_counter()
    write_iso(
        output,
        kernel=KERNEL,
        initrd=initrd,
        volume_label="RESCUE_BENCH",
        host="bench",
        kernel_cmdline="quiet",
        payload_dirs={"payload": payload},
        source_date_epoch=1_700_000_000,
        work_dir=base / f"work-{round_}",
    )
    return time.perf_counter() - start, output


def time_xorriso(tree: Path, output: Path) -> float:
    argv: list[str | os.PathLike[str]] = [
        "xorriso", "-as", "mkisofs", "-quiet", "-o", output, "-R", "-J", "-V", "RESCUE_BENCH",
        "-b", "isolinux/isolinux.bin", "-c", "isolinux/boot.cat", "-no-emul-boot",
        "-boot-load-size", "4", "-boot-info-table",
        "-eltorito-alt-boot", "-e", "boot/grub/efiboot.img", "-no-emul-boot",
        "-isohybrid-mbr", ISOHDPFX, "-isohybrid-gpt-basdat", tree,
    ]  # fmt: skip
    start = time.perf_counter()
    run(argv, what="benchmark baseline")
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--initrd-mib", type=int, default=150)
    parser.add_argument("--payload-files", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="bench-iso-"))
    try:
        initrd, payload = make_inputs(base, args.initrd_mib, args.payload_files)
        ours, theirs, hashing = [], [], []
        tree = base / "tree"
        for round_ in range(args.rounds):
            seconds, iso = time_mkmedia(base, initrd, payload, round_)
            ours.append(seconds)
            hashing.append(time_sha256(iso))
            if not tree.exists():
                run(["xorriso", "-osirrox", "on", "-indev", iso, "-extract", "/", tree])
            iso.unlink()
            baseline = base / "xorriso.iso"
            theirs.append(time_xorriso(tree, baseline))
            baseline.unlink()
        best_ours, best_theirs = min(ours), min(theirs)
        print(f"tree: kernel + {args.initrd_mib} MiB initrd + {args.payload_files} files")
        median_ours = statistics.median(ours)
        print(f"mkmedia write_iso    best {best_ours:.2f} s  median {median_ours:.2f} s")
        print(
            f"xorriso -as mkisofs  best {best_theirs:.2f} s  "
            f"median {statistics.median(theirs):.2f} s"
        )
        print(
            f"  of which sha256 for the manifest (write_iso does it; xorriso does not): "
            f"{min(hashing):.2f} s"
        )
        print(f"ratio mkmedia/xorriso (best of {args.rounds}): {best_ours / best_theirs:.2f}")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
