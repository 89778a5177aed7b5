"""Present disks as lsblk reports them, for the disk-mapping tests."""

from __future__ import annotations

from rescue_runtime.layout.parse.lsblk import BlockDevice


def present(path: str, size: int, serial: str | None = None) -> BlockDevice:
    name = path.removeprefix("/dev/")
    return BlockDevice(name=name, kname=name, path=path, type="disk", size=size, serial=serial)
