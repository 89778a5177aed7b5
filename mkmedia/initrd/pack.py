"""pack_tree(): a rescue tree in, a compressed reproducible initrd out."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from tqdm import tqdm

from mkmedia.initrd.compress import check_compression, compressing
from mkmedia.initrd.cpio import CpioWriter
from mkmedia.initrd.tree import DeviceNode, TreeScan
from rescue_runtime import atomic
from rescue_runtime.errors import ConfigError, MissingError

log = logging.getLogger("mkmedia.initrd")


@dataclass(frozen=True)
class PackResult:
    path: Path
    compression: str
    level: int | None
    entries: int  # archive members, the trailer not counted
    uncompressed_bytes: int  # the cpio archive
    compressed_bytes: int  # the file written
    sha256: str  # of the file written
    seconds: float


class _HashingFile:
    """Passes bytes on to a file while counting and hashing them (one read of the data)."""

    def __init__(self, handle: IO[bytes]) -> None:
        self._handle = handle
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes | memoryview, /) -> int:
        self._handle.write(data)
        self.sha256.update(data)
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        self._handle.flush()


def pack_tree(
    tree: Path,
    output: Path,
    *,
    compression: str = "zstd",
    level: int | None = None,
    threads: int = 0,
    source_date_epoch: int | None = None,
    normalize_owners: bool = True,
    extra_nodes: Sequence[DeviceNode] | None = None,
    progress: bool = False,
) -> PackResult:
    """Pack `tree` into the compressed cpio newc archive `output`.

    threads: zstd workers, 0 for one per CPU (the output is the same for any number).
    extra_nodes: device nodes added whether the tree has them or not; None means
    DEFAULT_DEVICE_NODES (/dev/console and /dev/null), () means none.
    The file is written under a temporary name beside `output` and renamed when complete.
    """
    started = time.monotonic()
    tree = Path(tree)
    output = Path(output)
    chosen = check_compression(compression, level, threads)
    if not output.parent.is_dir():
        raise MissingError(
            f"The directory {output.parent} for the initrd {output.name} does not exist.",
            hint="Create it first, or choose another output path.",
        )
    if output.resolve().is_relative_to(tree.resolve()):
        raise ConfigError(
            f"The initrd {output} would be written inside the tree {tree} it packs.",
            hint="Write the initrd outside the rescue tree.",
        )
    scan = TreeScan(
        tree,
        source_date_epoch=source_date_epoch,
        normalize_owners=normalize_owners,
        extra_nodes=extra_nodes,
    )
    with (
        atomic.atomic_open(output, mode=0o644) as handle,  # a boot file, not a secret
        tqdm(
            total=scan.archive_bytes,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=f"initrd ({compression})",
            disable=not progress,
        ) as bar,
    ):
        sink = _HashingFile(handle)
        with compressing(sink, compression, level=chosen, threads=threads) as stream:
            writer = CpioWriter(
                stream, progress=(lambda done: bar.update(done - bar.n)) if progress else None
            )
            for entry in scan:
                writer.add(entry)
            writer.finish()
    result = PackResult(
        path=output,
        compression=compression,
        level=chosen,
        entries=writer.entries,
        uncompressed_bytes=writer.bytes_written,
        compressed_bytes=sink.size,
        sha256=sink.sha256.hexdigest(),
        seconds=time.monotonic() - started,
    )
    log.info(
        "initrd %s: %d entries, %d bytes of cpio, %d bytes %s (level %s) in %.1f s, sha256 %s",
        output,
        result.entries,
        result.uncompressed_bytes,
        result.compressed_bytes,
        compression,
        chosen,
        result.seconds,
        result.sha256,
    )
    return result
