"""Streaming compressors for the initrd and the check that a kernel can unpack the result."""

from __future__ import annotations

import gzip
import lzma
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import IO, cast

import zstandard

from mkmedia.initrd.cpio import Sink
from rescue_runtime.errors import ConfigError

COMPRESSIONS = ("zstd", "gzip", "xz", "none")

# zstd level 3 is the default: on a 1148 MB tree (usr/lib/x86_64-linux-gnu, usr/bin and 100 MB
# of kernel drivers; bench/bench_initrd.py, busy 2-core machine) it packed as fast as level 1
# (47 s) and 14% smaller (356 MB), while level 6 took 3.7x as long for 7% less, level 12
# 11x for 13% less, and level 19 (100 MB of drivers) 67x for 23% less: the boot reads those
# extra megabytes in a fraction of a second, the build would wait minutes.
DEFAULT_LEVELS: dict[str, int] = {"zstd": 3, "gzip": 6, "xz": 6}
# zstd stops at 19: levels 20-22 need windows up to 128 MiB, which the kernel has to allocate
# at boot. xz presets above 6 only grow the dictionary; the kernel accepts any of them.
LEVEL_RANGES: dict[str, tuple[int, int]] = {"zstd": (1, 19), "gzip": (1, 9), "xz": (0, 9)}

# The kernel option that lets the kernel unpack each kind (CONFIG_BLK_DEV_INITRD for all).
KERNEL_OPTIONS: dict[str, str] = {
    "zstd": "CONFIG_RD_ZSTD",
    "gzip": "CONFIG_RD_GZIP",
    "xz": "CONFIG_RD_XZ",
}


def check_compression(compression: str, level: int | None, threads: int) -> int | None:
    """Validate the settings; return the level to use (None for 'none')."""
    if compression not in COMPRESSIONS:
        raise ConfigError(
            f"Unknown initrd compression {compression!r}.",
            hint=f"Use one of: {', '.join(COMPRESSIONS)}.",
        )
    if threads < 0:
        raise ConfigError(
            f"The number of compression threads must be 0 (all CPUs) or more, not {threads}."
        )
    if compression == "none":
        return None
    low, high = LEVEL_RANGES[compression]
    chosen = DEFAULT_LEVELS[compression] if level is None else level
    if not low <= chosen <= high:
        raise ConfigError(
            f"The {compression} compression level {chosen} is out of range.",
            hint=f"Use a level from {low} to {high} (default {DEFAULT_LEVELS[compression]}).",
        )
    return chosen


@contextmanager
def compressing(
    sink: Sink, compression: str, *, level: int | None = None, threads: int = 0
) -> Iterator[Sink]:
    """A writer that compresses into `sink`; the stream is complete when the block exits.

    zstd always runs in its multi-threaded mode (threads=0 means one worker per CPU): its
    output is then the same for any number of workers, so the initrd does not depend on the
    machine that built it. gzip and xz are single-threaded.
    """
    chosen = check_compression(compression, level, threads)
    if compression == "none":
        yield sink
        return
    assert chosen is not None
    if compression == "zstd":
        cctx = zstandard.ZstdCompressor(
            level=chosen, threads=threads or -1, write_checksum=True, write_content_size=False
        )
        with cctx.stream_writer(cast(IO[bytes], sink), closefd=False) as writer:
            yield cast(Sink, writer)
    elif compression == "gzip":
        # filename="" and mtime=0: nothing of the build (temp name, time) goes into the header.
        with gzip.GzipFile(
            filename="", mode="wb", compresslevel=chosen, fileobj=cast(IO[bytes], sink), mtime=0
        ) as writer:
            yield writer
    else:
        # The kernel's XZ decoder knows CRC32 (and no check), not xz's default CRC64.
        with lzma.LZMAFile(
            cast(IO[bytes], sink),
            mode="wb",
            format=lzma.FORMAT_XZ,
            check=lzma.CHECK_CRC32,
            preset=chosen,
        ) as writer:
            yield writer


def _setting(option: str, value: str | None) -> str:
    return f"{option}={value}" if value else f"{option} not set"


def check_kernel_support(
    compression: str,
    config: Mapping[str, str],
    *,
    config_file: str | os.PathLike[str] = "the kernel configuration",
) -> None:
    """Raise ConfigError unless the kernel described by `config` can unpack this initrd.

    `config` maps option names to values as in the kernel's config file ({'CONFIG_RD_ZSTD':
    'y', ...}); options that are "not set" may be absent.
    """
    check_compression(compression, None, 0)
    where = os.fspath(config_file)
    initrd = config.get("CONFIG_BLK_DEV_INITRD")
    if initrd != "y":
        raise ConfigError(
            f"The kernel configuration {where} has "
            f"{_setting('CONFIG_BLK_DEV_INITRD', initrd)}: that kernel cannot load an initrd.",
            hint="Build the rescue media with a kernel that has CONFIG_BLK_DEV_INITRD=y.",
        )
    option = KERNEL_OPTIONS.get(compression)
    if option is None:
        return
    value = config.get(option)
    if value == "y":
        return
    usable = [kind for kind, opt in KERNEL_OPTIONS.items() if config.get(opt) == "y"]
    usable.append("none")
    raise ConfigError(
        f"The kernel configuration {where} has {_setting(option, value)}, so that kernel "
        f"cannot unpack a {compression}-compressed initrd.",
        hint=f"Choose an initrd compression this kernel supports: {', '.join(usable)}.",
    )
