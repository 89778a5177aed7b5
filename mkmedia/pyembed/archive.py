"""A byte-reproducible zip archive for zipimport: sorted members, fixed times and modes."""

from __future__ import annotations

import os
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rescue_runtime import atomic

# The earliest time a zip header can hold.
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class ZipEntry:
    arcname: str
    source: Path


def zip_date_time(source_date_epoch: int | None) -> tuple[int, int, int, int, int, int]:
    """SOURCE_DATE_EPOCH as a zip timestamp (UTC), clamped to what zip can store."""
    if source_date_epoch is None:
        return ZIP_EPOCH
    t = time.gmtime(max(source_date_epoch, 315532800))  # 1980-01-01T00:00:00Z
    if t.tm_year > 2107:
        return (2107, 12, 31, 23, 59, 58)
    # Zip stores seconds in units of 2.
    return (t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec - t.tm_sec % 2)


def write_zip(
    dest: Path,
    entries: Sequence[ZipEntry],
    directories: Sequence[str] = (),
    *,
    source_date_epoch: int | None = None,
    compress: bool = True,
) -> None:
    """Write `entries` (and explicit directory members) to `dest`, atomically.

    The result depends only on the members' names and contents, the timestamp and the
    compression (deflate output depends on the zlib build, which is the same for one host).
    """
    names = [e.arcname for e in entries]
    if len(set(names)) != len(names):
        raise ValueError("duplicate zip member names")
    date_time = zip_date_time(source_date_epoch)
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    members: list[tuple[str, Path | None]] = [(e.arcname, e.source) for e in entries]
    members += [(d if d.endswith("/") else d + "/", None) for d in directories]
    with atomic.atomic_path(dest, durable=False) as tmp, zipfile.ZipFile(tmp, "w") as zf:
        for arcname, source in sorted(members):
            info = zipfile.ZipInfo(arcname, date_time)
            info.create_system = 3  # Unix, so external_attr holds the mode
            if source is None:
                info.external_attr = (0o40755 << 16) | 0x10
                zf.writestr(info, b"")
                continue
            info.external_attr = 0o100644 << 16
            info.compress_type = method
            zf.writestr(info, source.read_bytes(), compresslevel=9 if compress else None)
        zf.close()  # before the mtime is set, or closing would touch it again
        if source_date_epoch is not None:
            os.utime(tmp, (source_date_epoch, source_date_epoch))
