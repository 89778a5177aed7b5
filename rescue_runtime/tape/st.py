"""A real tape drive through the Linux st driver: records with read()/write(), everything
else with the MTIOCTOP and MTIOCGET ioctls of linux/mtio.h (no `mt` program in between).

Always the non-rewinding device (/dev/nstN): the rewinding /dev/stN rewinds on every close,
so a tape written in several opens would keep only its last part. The device I/O goes
through `DeviceIO`, so the ioctl layer is tested against a fake device that records each
operation (there is no tape drive on the machines the tests run on).
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import struct
from dataclasses import dataclass
from typing import Protocol

from rescue_runtime.tape.base import EndOfMedium, TapeError

log = logging.getLogger("mkmedia.tape")

# linux/mtio.h. struct mtop { short mt_op; int mt_count; } (8 bytes with its padding);
# struct mtget { long mt_type, mt_resid, mt_dsreg, mt_gstat, mt_erreg;
#                __kernel_daddr_t mt_fileno, mt_blkno; } (daddr_t is an int).
MTOP = struct.Struct("@hi")
MTGET = struct.Struct("@lllllii")


def _ioc(direction: int, kind: str, number: int, size: int) -> int:
    """asm-generic/ioctl.h's _IOC(): direction 1 write, 2 read."""
    return (direction << 30) | (size << 16) | (ord(kind) << 8) | number


MTIOCTOP = _ioc(1, "m", 1, MTOP.size)  # _IOW('m', 1, struct mtop)
MTIOCGET = _ioc(2, "m", 2, MTGET.size)  # _IOR('m', 2, struct mtget)

# mt_op values
MTFSF, MTBSF, MTWEOF, MTREW, MTEOM = 1, 2, 5, 6, 12
MTSETBLK, MTCOMPRESSION = 20, 32
OP_NAMES = {
    MTFSF: "MTFSF",
    MTBSF: "MTBSF",
    MTWEOF: "MTWEOF",
    MTREW: "MTREW",
    MTEOM: "MTEOM",
    MTSETBLK: "MTSETBLK",
    MTCOMPRESSION: "MTCOMPRESSION",
}
# mt_gstat bits (GMT_*)
GMT_EOF, GMT_BOT, GMT_EOT, GMT_EOD = 0x80000000, 0x40000000, 0x20000000, 0x08000000
GMT_WR_PROT, GMT_ONLINE = 0x04000000, 0x01000000
BLKSIZE_MASK = 0xFFFFFF  # mt_dsreg: block size in the low 24 bits, density above
SCSI_TAPE_MAJOR = 9


class DeviceIO(Protocol):
    def open(self, path: str, flags: int) -> int: ...
    def close(self, fd: int) -> None: ...
    def read(self, fd: int, size: int) -> bytes: ...
    def write(self, fd: int, data: bytes) -> int: ...
    def ioctl(self, fd: int, request: int, arg: bytes) -> bytes: ...


class OsDeviceIO:
    """The real thing: os and fcntl.ioctl."""

    def open(self, path: str, flags: int) -> int:
        return os.open(path, flags)

    def close(self, fd: int) -> None:
        os.close(fd)

    def read(self, fd: int, size: int) -> bytes:
        return os.read(fd, size)

    def write(self, fd: int, data: bytes) -> int:
        return os.write(fd, data)

    def ioctl(self, fd: int, request: int, arg: bytes) -> bytes:
        import fcntl

        result: bytes = fcntl.ioctl(fd, request, arg)
        return result


@dataclass(frozen=True)
class Status:
    """MTIOCGET's answer."""

    drive_type: int
    resid: int
    dsreg: int
    gstat: int
    erreg: int
    file_number: int
    block_number: int

    @property
    def block_size(self) -> int:
        return self.dsreg & BLKSIZE_MASK

    @property
    def at_bot(self) -> bool:
        return bool(self.gstat & GMT_BOT)

    @property
    def at_eod(self) -> bool:
        return bool(self.gstat & GMT_EOD)

    @property
    def at_eot(self) -> bool:
        return bool(self.gstat & GMT_EOT)

    @property
    def write_protected(self) -> bool:
        return bool(self.gstat & GMT_WR_PROT)

    @property
    def online(self) -> bool:
        return bool(self.gstat & GMT_ONLINE)


def is_st_device(path: str) -> bool:
    """A character device of the SCSI tape driver (major 9)."""
    try:
        info = os.stat(path)
    except OSError:
        return False
    return stat.S_ISCHR(info.st_mode) and os.major(info.st_rdev) == SCSI_TAPE_MAJOR


def check_non_rewinding(path: str) -> None:
    """Refuse the rewinding device; by-id links are judged by what they point at."""
    name = os.path.basename(os.path.realpath(path))
    if name.startswith("st") and name[2:3].isdigit():
        raise TapeError(
            f"{path} is the rewinding tape device {name}: it rewinds on every close, so the "
            "tape would keep only the last part written.",
            hint=f"Use the non-rewinding device /dev/n{name} instead.",
        )


class StTape:
    """A tape drive through the st driver (see the module's text)."""

    def __init__(self, path: str, *, write: bool = False, io: DeviceIO | None = None) -> None:
        check_non_rewinding(path)
        self.name = path
        self.io: DeviceIO = io or OsDeviceIO()
        flags = (os.O_RDWR if write else os.O_RDONLY) | os.O_CLOEXEC
        try:
            self.fd = self.io.open(path, flags)
        except OSError as exc:
            raise TapeError(
                f"Cannot open the tape drive {path}: {exc.strerror or exc}.",
                hint="Check that a tape is loaded (and not write-protected, to write it).",
            ) from None

    def _op(self, op: int, count: int) -> None:
        try:
            self.io.ioctl(self.fd, MTIOCTOP, MTOP.pack(op, count))
        except OSError as exc:
            if exc.errno == errno.EIO and op in (MTFSF, MTBSF):
                raise EndOfMedium(
                    f"Spacing {count} filemark(s) on {self.name} ran off the recorded data."
                ) from None
            raise TapeError(
                f"The tape drive {self.name} refused {OP_NAMES.get(op, op)} {count}: "
                f"{exc.strerror or exc}."
            ) from None

    def status(self) -> Status:
        try:
            raw = self.io.ioctl(self.fd, MTIOCGET, bytes(MTGET.size))
        except OSError as exc:
            raise TapeError(f"MTIOCGET on {self.name} failed: {exc.strerror or exc}.") from None
        return Status(*MTGET.unpack(raw))

    def write_record(self, data: bytes) -> None:
        try:
            written = self.io.write(self.fd, data)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise EndOfMedium(f"The tape in {self.name} is full (end of medium).") from None
            raise TapeError(f"Writing to {self.name} failed: {exc.strerror or exc}.") from None
        if written != len(data):
            # st's early warning: the record went short, the tape is at its end
            raise EndOfMedium(
                f"The tape in {self.name} reached its end: {written} of {len(data)} bytes of "
                "a record went on."
            )

    def write_filemark(self, count: int = 1) -> None:
        self._op(MTWEOF, count)

    def read_record(self, limit: int) -> bytes:
        try:
            return self.io.read(self.fd, limit)
        except OSError as exc:
            if exc.errno in (errno.EIO, errno.ENOSPC) and self._at_end():
                raise EndOfMedium(f"{self.name}: end of the recorded data.") from None
            if exc.errno == errno.ENOMEM:
                raise TapeError(
                    f"A record on {self.name} is larger than {limit} bytes.",
                    hint="The tape was written with a larger block size than expected.",
                ) from None
            raise TapeError(f"Reading {self.name} failed: {exc.strerror or exc}.") from None

    def _at_end(self) -> bool:
        try:
            status = self.status()
        except TapeError:
            return True  # blank check on a new tape answers nothing better
        return status.at_eod or status.at_eot

    def space_filemarks(self, count: int) -> None:
        if count > 0:
            self._op(MTFSF, count)
        elif count < 0:
            self._op(MTBSF, -count)

    def rewind(self) -> None:
        self._op(MTREW, 1)

    def set_block_size(self, size: int) -> None:
        self._op(MTSETBLK, size)

    def set_compression(self, on: bool) -> None:
        """As the drive allows: a drive without compression keeps writing uncompressed."""
        try:
            self._op(MTCOMPRESSION, int(on))
        except TapeError as exc:
            log.warning("%s: compression stays as it is (%s)", self.name, exc)

    def close(self) -> None:
        self.io.close(self.fd)
