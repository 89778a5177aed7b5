"""Time from QEMU start to the rescue prompt, against a bare busybox initrd in the same run.

    python -m bench.bench_boot                 # the QEMU test recipe
    python -m bench.bench_boot --default       # also the built-in default recipe

Software emulation only: absolute seconds depend on the machine and its load, so the ratio to
the baseline (same kernel, a busybox initrd that prints a marker at once) is what to compare.
The rescue system's own steps come from /run/mkmedia/init.status inside the guest.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from mkmedia.kernel.choice import choose_kernel
from mkmedia.qemu import Guest, Machine
from rescue_runtime.run import require, run, run_bytes
from tests.rescue_build import REPO, build_media

PROMPT = r"RESCUE [^\s:]+:[^\n]*# "
MARKER = "BUSYBOX-BASELINE-UP"


def busybox_initrd(workdir: Path) -> Path:
    """A newc archive with only busybox and an /init that prints a marker."""
    tree = workdir / "busybox-tree"
    (tree / "bin").mkdir(parents=True)
    shutil.copy2(require("busybox", package="busybox-static"), tree / "bin/busybox")
    init = tree / "init"
    init.write_text(f"#!/bin/busybox sh\n/bin/busybox echo {MARKER}\nexec /bin/busybox sh\n")
    init.chmod(0o755)
    names = run(["find", "."], cwd=tree).stdout
    archive = run_bytes(["cpio", "-o", "-H", "newc", "--quiet"], input=names.encode(), cwd=tree)
    out = workdir / "busybox.cpio"
    out.write_bytes(archive)
    return out


def time_to(machine: Machine, pattern: str, timeout: float = 900) -> tuple[float, Guest]:
    guest = Guest(machine, deadline=timeout + 60, name="benchmark guest").start()
    guest.expect(pattern, timeout)
    return guest.elapsed(), guest


def measure(label: str, kernel: Path, initrd: Path, baseline: float) -> None:
    machine = Machine(kernel=kernel, initrd=initrd, append="console=ttyS0,115200")
    seconds, guest = time_to(machine, PROMPT)
    try:
        _, out = guest.shell("cat /run/mkmedia/init.status", timeout=120)
    finally:
        guest.close()
    steps = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    detail = ", ".join(f"{s['step']} {s['seconds']:.1f} s" for s in steps)
    size = initrd.stat().st_size / 1e6
    print(
        f"{label:<22} {seconds:7.1f} s to the prompt   ratio {seconds / baseline:5.2f}   "
        f"initrd {size:.1f} MB"
    )
    print(f"{'':<22} init steps: {detail}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--default", action="store_true", help="also boot the default recipe")
    args = parser.parse_args(argv)
    kernel = choose_kernel("auto").image
    with tempfile.TemporaryDirectory(prefix="mkmedia-bench-boot-") as tmp:
        work = Path(tmp)
        baseline, guest = time_to(
            Machine(kernel=kernel, initrd=busybox_initrd(work), append="console=ttyS0"),
            MARKER,
        )
        guest.close()
        print(f"{'baseline (busybox)':<22} {baseline:7.1f} s to its marker")
        test = build_media(work / "vm", output="RAMDISK")
        measure("QEMU test recipe", test / "rescue-kernel", test / "rescue-initrd.img", baseline)
        if args.default:
            default = build_media(
                work / "default",
                output="RAMDISK",
                recipe=REPO / "mkmedia" / "data" / "recipes" / "default.yaml",
            )
            measure(
                "default recipe",
                default / "rescue-kernel",
                default / "rescue-initrd.img",
                baseline,
            )


if __name__ == "__main__":
    main()
