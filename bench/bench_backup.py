"""NETFS backup and restore speed and archive size, against ReaR and this machine's ceiling.

    python -m bench.bench_backup                  # build the sample tree, compare
    python -m bench.bench_backup --tree DIR       # back up an existing tree instead

One data tree (bench_initrd's sample: /usr/lib/x86_64-linux-gnu, /usr/bin and 100 MB of kernel
drivers), in the same run: our backup (tar with every metadata option | zstd -T0) and
restore; ReaR 2.7's default NETFS tar command (`tar --sparse ... --gzip`) and its restore; the
ceiling `tar | zstd -T0 > /dev/null` and a plain `cp -a` (restore: `zstd -d | tar -x`
without the metadata options, and our verify pass alone). The page cache is warm for every
row; ratios are to our own time and size, so the machine's load cancels out.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.bench_initrd import bench_workdir, sample_tree
from rescue_runtime.backup.netfs import VOLUME_NAME, Netfs
from rescue_runtime.backup.sources import BackupPlan, Source
from rescue_runtime.run import run

# ReaR 2.7's create and restore options (backup/NETFS/default/500_make_backup.sh and
# restore/NETFS/default/400_restore_backup.sh) with BACKUP_PROG_OPTIONS=(--anchored).
REAR_CREATE = (
    "tar --warning=no-xdev --sparse --block-number --totals --verbose --no-wildcards-match-slash "
    "--one-file-system --ignore-failed-read --anchored --gzip -X /dev/null -c -f {out} ."
)
REAR_RESTORE = (
    "tar --block-number --totals --verbose --anchored --no-wildcards-match-slash --gzip "
    "-C {target} -x -f {archive}"
)


@dataclass
class Row:
    name: str
    seconds: float
    size: int  # archive bytes (0: no archive)


def timed(name: str, action: Callable[[], object], output: Path | None = None) -> Row:
    started = time.monotonic()
    action()
    seconds = time.monotonic() - started
    return Row(name, seconds, output.stat().st_size if output and output.is_file() else 0)


def shell(script: str, cwd: Path) -> Callable[[], object]:
    # The baselines are shell command lines by definition; run() still runs and logs them.
    return lambda: run(["sh", "-c", script], cwd=cwd, what="running a baseline")


def quiet(done: int, total: int) -> None:
    """No progress line: it would only disturb the table."""


def table(title: str, rows: list[Row], data_bytes: int) -> None:
    ours = rows[0]
    print(f"\n{title}")
    print(f"{'':40} {'seconds':>8} {'MiB/s':>7} {'MB':>8} {'speed/ours':>10} {'size/ours':>9}")
    for row in rows:
        size = f"{row.size / 1e6:8.1f}" if row.size else f"{'-':>8}"
        ratio = f"{row.size / ours.size:9.3f}" if row.size and ours.size else f"{'-':>9}"
        print(
            f"{row.name:40} {row.seconds:8.2f} {data_bytes / 2**20 / row.seconds:7.1f} {size} "
            f"{ours.seconds / row.seconds:10.2f} {ratio}",
            flush=True,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, help="back up this tree instead of the sample tree")
    parser.add_argument("--workdir", type=Path, help="where the sample tree and outputs go")
    args = parser.parse_args(argv)
    with bench_workdir("bench-backup-", args.workdir, ("tar", "zstd", "gzip", "cp")) as work:
        tree, size = sample_tree(args.tree, work, None)
        out = work / "out"
        out.mkdir()
        plan = BackupPlan(root=str(tree), sources=[Source("/", "mount", "-", "-")])
        ours_dir = out / "ours"
        rear = out / "rear.tar.gz"
        crypt_dir, split_dir = out / "encrypted", out / "volumes"
        key = work / "bench.key"
        key.write_text("bench-key-" + "0123456789" * 4 + "\n")
        backups = [
            timed(
                "ours: tar (all metadata) | zstd -T0",
                lambda: Netfs.backup(
                    plan, ours_dir, url="file:///bench", layout_sha256=None, progress=quiet
                ),
                ours_dir / VOLUME_NAME,
            ),
            timed(
                "  ours, encrypted (openssl aes-256-ctr)",
                lambda: Netfs.backup(
                    plan,
                    crypt_dir,
                    url="file:///bench",
                    layout_sha256=None,
                    progress=quiet,
                    key_file=key,
                ),
            ),
            timed(
                "  ours, in 64 MiB volumes (split)",
                lambda: Netfs.backup(
                    plan,
                    split_dir,
                    url="file:///bench",
                    layout_sha256=None,
                    progress=quiet,
                    volume_size=64 * 2**20,
                ),
            ),
            timed(
                "ReaR 2.7 default: tar --gzip",
                shell(REAR_CREATE.format(out=shlex.quote(str(rear))) + " > /dev/null", tree),
                rear,
            ),
            timed(
                "ceiling: tar | zstd -T0 > /dev/null",
                shell("tar -cf - . | zstd -T0 -q -c > /dev/null", tree),
            ),
            timed("ceiling: cp -a", lambda: run(["cp", "-a", tree, out / "copy"])),
        ]
        shutil.rmtree(out / "copy")
        table("backup (MiB/s of file data)", backups, size)

        ours_target, rear_target = out / "restore-ours", out / "restore-rear"
        plain_target = out / "restore-plain"
        crypt_target, split_target = out / "restore-encrypted", out / "restore-volumes"
        volume = shlex.quote(str(ours_dir / VOLUME_NAME))
        for directory in (ours_target, rear_target, plain_target, crypt_target, split_target):
            directory.mkdir()
        rear_script = REAR_RESTORE.format(
            target=shlex.quote(str(rear_target)), archive=shlex.quote(str(rear))
        )
        restores = [
            timed(
                "ours: verify + zstd -d | tar -x",
                lambda: Netfs.restore(ours_dir, ours_target, progress=quiet),
            ),
            timed(
                "  ours, encrypted: verify + openssl -d | zstd -d | tar -x",
                lambda: Netfs.restore(crypt_dir, crypt_target, progress=quiet, key_file=key),
            ),
            timed(
                "  ours, volumes: verify + cat | zstd -d | tar -x",
                lambda: Netfs.restore(split_dir, split_target, progress=quiet),
            ),
            timed("ReaR 2.7 default: tar --gzip -x", shell(rear_script + " > /dev/null", out)),
            timed("  ours, its verify alone (sha256)", lambda: Netfs.verify(ours_dir)),
            timed(
                "ceiling: zstd -d | tar -x (no metadata)",
                shell(f"zstd -d -q -c < {volume} | tar -x -f - -C {plain_target}", out),
            ),
        ]
        table("restore (MiB/s of file data)", restores, size)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
