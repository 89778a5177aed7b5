"""Run the benchmarks: `python -m bench` (or `make bench`) runs them all, `python -m bench
recover boot` only those named. Each prints ratios to a baseline measured in the same run;
nothing here asserts a time."""

from __future__ import annotations

import sys
from collections.abc import Callable

from bench import bench_backup, bench_boot, bench_elf, bench_initrd, bench_recover, bench_restore

BENCHES: dict[str, tuple[str, Callable[[], object]]] = {
    "elf": ("ELF resolver vs ldd", lambda: bench_elf.main([])),
    "initrd": ("initrd packer vs cpio|zstd and cpio|gzip", lambda: bench_initrd.main([])),
    "backup": ("NETFS backup and restore vs ReaR's tar --gzip", lambda: bench_backup.main([])),
    "boot": ("boot to the rescue prompt", lambda: bench_boot.main(["--default"])),
    "recover": (
        "unattended recovery of the BIOS + LVM source machine vs ReaR 2.7",
        lambda: bench_recover.main([]),
    ),
    "restore": (
        "where restore time goes in the rescue guest, vs ReaR 2.7's restore of the same data",
        lambda: bench_restore.main([]),
    ),
}


def main(argv: list[str] | None = None) -> None:
    names = sys.argv[1:] if argv is None else argv
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        raise SystemExit(f"unknown bench {', '.join(unknown)}; known: {', '.join(BENCHES)}")
    for name in names or list(BENCHES):
        title, run = BENCHES[name]
        print(f"\n=== {title} ===", flush=True)
        run()


if __name__ == "__main__":
    main()
