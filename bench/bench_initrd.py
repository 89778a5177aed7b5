"""Initrd packing speed and size: our packer against the shell pipelines, in one run.

    python -m bench.bench_initrd                      # build the sample tree, compare
    python -m bench.bench_initrd --levels 1,3,6,9,12,19   # and the zstd level table
    python -m bench.bench_initrd --tree DIR           # pack an existing tree instead

The sample tree is a copy of /usr/lib/x86_64-linux-gnu, /usr/bin and the first 100 MB (in
sorted order) of the kernel's drivers: the kind of content a rescue initrd holds. Baselines:
`find . | sort | cpio -o -H newc | zstd -T0 -3` and ReaR's `find | cpio -o -H newc | gzip -6`.
Times vary with the machine's load; the ratios are measured in the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import shutil
import signal
import stat
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from mkmedia.initrd import pack_tree
from rescue_runtime.run import require, run

SOURCES = ("usr/lib/x86_64-linux-gnu", "usr/bin")
DRIVERS_BYTES = 100 * 10**6


@dataclass
class Row:
    name: str
    seconds: float
    size: int


def default_kernel() -> str:
    release = os.uname().release
    if Path("/lib/modules", release, "kernel").is_dir():
        return release
    found = sorted(Path("/lib/modules").glob("*/kernel"))
    if not found:
        sys.exit("no /lib/modules/*/kernel on this machine: pass --tree")
    return found[-1].parent.name


def build_sample_tree(dest: Path, kernel: str) -> None:
    # cp -a keeps the hard links (Mesa's drivers are one file under many names).
    dest.mkdir(parents=True)
    run(["cp", "-a", "--parents", *SOURCES, dest], cwd="/", what="copying the sample tree")
    drivers = Path("/lib/modules", kernel, "kernel/drivers")
    total = 0
    for path in sorted(p for p in drivers.rglob("*") if p.is_file() and not p.is_symlink()):
        if total >= DRIVERS_BYTES:
            break
        target = dest / "usr/lib/modules" / kernel / "kernel/drivers" / path.relative_to(drivers)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
        total += path.stat().st_size


def tree_bytes(tree: Path) -> tuple[int, int]:
    """Files and bytes (hard links once); reading them warms the page cache for fair timings."""
    files = size = 0
    seen: set[tuple[int, int]] = set()
    for dirpath, _dirs, names in os.walk(tree):
        for name in names:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            files += 1
            with open(path, "rb") as handle:
                while chunk := handle.read(1 << 20):
                    size += len(chunk)
    return files, size


def timed(name: str, output: Path, action: Callable[[], object]) -> Row:
    started = time.monotonic()
    action()
    return Row(name, time.monotonic() - started, output.stat().st_size)


def pipeline(tree: Path, command: str, output: Path) -> Callable[[], object]:
    # The baselines are shell pipelines by definition; run() still runs and logs them.
    script = f"{command} > {shlex.quote(str(output))}"
    return lambda: run(["sh", "-c", script], cwd=tree, what="running the baseline")


@contextlib.contextmanager
def bench_workdir(prefix: str, parent: Path | None, programs: Sequence[str]) -> Iterator[Path]:
    """A fresh work directory (below `parent` when given), removed afterwards, once the
    programs the baselines run are found."""
    # A plain `kill` still removes the sample tree (finally runs on SystemExit).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    for program in programs:
        require(program)
    work = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def sample_tree(tree: Path | None, work: Path, kernel: str | None) -> tuple[Path, int]:
    """`tree`, or the sample tree built in `work` with `kernel`'s drivers (default: the
    newest installed), and its bytes of file data (printed)."""
    if tree is None:
        tree = work / "tree"
        kernel = kernel or default_kernel()
        print(f"building the sample tree in {tree} (kernel {kernel}) ...", flush=True)
        build_sample_tree(tree, kernel)
    files, size = tree_bytes(tree)
    print(f"tree: {tree}: {files} files, {size / 1e6:.1f} MB", flush=True)
    return tree, size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, help="pack this tree instead of the sample tree")
    parser.add_argument("--kernel", help="kernel release whose drivers go into the sample tree")
    parser.add_argument("--workdir", type=Path, help="where the sample tree and outputs go")
    parser.add_argument("--levels", default="", help="zstd levels to tabulate, e.g. 1,3,6,19")
    args = parser.parse_args(argv)
    programs = ("cp", "cpio", "zstd", "gzip", "find", "sort")
    with bench_workdir("bench-initrd-", args.workdir, programs) as work:
        tree, size = sample_tree(args.tree, work, args.kernel)
        print()
        out = work / "out"
        out.mkdir()

        ours = timed(
            "ours: zstd default level", out / "ours.zst", lambda: pack_tree(tree, out / "ours.zst")
        )
        rows = [
            ours,
            timed(
                "find | sort | cpio | zstd -T0 -3",
                out / "base.zst",
                pipeline(
                    tree,
                    "find . | LC_ALL=C sort | cpio -o -H newc --quiet | zstd -T0 -3 -q",
                    out / "base.zst",
                ),
            ),
            timed(
                "find | cpio | gzip -6 (ReaR)",
                out / "rear.gz",
                pipeline(tree, "find . | cpio -o -H newc --quiet | gzip -6", out / "rear.gz"),
            ),
        ]
        print(f"{'packer':36} {'seconds':>8} {'MB':>8} {'time/ours':>10} {'size/ours':>10}")
        for row in rows:
            print(
                f"{row.name:36} {row.seconds:8.2f} {row.size / 1e6:8.1f} "
                f"{row.seconds / ours.seconds:10.2f} {row.size / ours.size:10.3f}",
                flush=True,
            )

        levels = [int(x) for x in args.levels.split(",") if x.strip()]
        if levels:
            print(f"\nzstd levels (ours, all CPUs), input {size / 1e6:.1f} MB of file data:")
            print(f"{'level':>5} {'seconds':>8} {'MB':>8} {'ratio':>6} {'MB/s':>7}")
            for level in levels:
                target = out / f"level{level}.zst"
                result = pack_tree(tree, target, level=level)
                print(
                    f"{level:5d} {result.seconds:8.2f} {result.compressed_bytes / 1e6:8.1f} "
                    f"{result.uncompressed_bytes / result.compressed_bytes:6.2f} "
                    f"{result.uncompressed_bytes / 1e6 / result.seconds:7.1f}",
                    flush=True,
                )
                target.unlink()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
