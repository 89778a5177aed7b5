"""Closure of /usr/bin and /usr/sbin: the ELF resolver vs one `ldd` call per file.

ReaR and dracut find libraries by running `ldd` on every program; the resolver reads the
files with pyelftools instead. Both run here on the same files, one after the other:

    python -m bench.bench_elf [--dirs /usr/bin /usr/sbin]
"""

from __future__ import annotations

import argparse
import os
import time

from mkmedia.elf.reader import is_elf
from mkmedia.elf.resolver import ElfResolver
from rescue_runtime.run import run


def candidates(dirs: list[str]) -> list[str]:
    """Every regular file (symlinks followed, each real file once) in the directories."""
    seen: set[str] = set()
    out: list[str] = []
    for directory in dirs:
        for name in sorted(os.listdir(directory)):
            path = os.path.join(directory, name)
            real = os.path.realpath(path)
            if real not in seen and os.path.isfile(real):
                seen.add(real)
                out.append(path)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--dirs", nargs="+", default=["/usr/bin", "/usr/sbin"])
    args = parser.parse_args(argv)
    files = candidates(args.dirs)

    t0 = time.perf_counter()
    closure = ElfResolver().closure(files)
    t_resolver = time.perf_counter() - t0

    # The baseline: `ldd` on every ELF file, as ReaR's RequiredSharedObjects does.
    elves = [f for f in files if is_elf(f)]
    t0 = time.perf_counter()
    libs: set[str] = set()
    for f in elves:
        for line in run(["ldd", f], check=False).stdout.splitlines():
            parts = line.split()
            if "=>" in parts and len(parts) > 2 and parts[2].startswith("/"):
                libs.add(os.path.realpath(parts[2]))
    t_ldd = time.perf_counter() - t0

    ours = {os.path.realpath(p) for p in closure.real_files()}
    print(f"inputs: {len(files)} files ({len(elves)} ELF) in {' '.join(args.dirs)}")
    print(f"resolver: {t_resolver:.2f} s, {len(closure.files)} paths to copy, "
          f"{len(closure.missing)} missing")  # fmt: skip
    print(f"ldd x{len(elves)}: {t_ldd:.2f} s, {len(libs)} libraries")
    print(f"libraries ldd found that the closure lacks: {len(libs - ours)}")
    print(f"ratio ldd/resolver: {t_ldd / t_resolver:.1f}x")


if __name__ == "__main__":
    main()
