"""Run every benchmark: `python -m bench` (or `make bench`). Each prints ratios to a baseline
measured in the same run; nothing here asserts a time."""

from __future__ import annotations

from bench import bench_backup, bench_boot, bench_elf, bench_initrd


def main() -> None:
    for name, run in (
        ("ELF resolver vs ldd", lambda: bench_elf.main([])),
        ("initrd packer vs cpio|zstd and cpio|gzip", lambda: bench_initrd.main([])),
        ("NETFS backup and restore vs ReaR's tar --gzip", lambda: bench_backup.main([])),
        ("boot to the rescue prompt", lambda: bench_boot.main(["--default"])),
    ):
        print(f"\n=== {name} ===", flush=True)
        run()


if __name__ == "__main__":
    main()
