"""A fake st tape device for the ioctl layer (there is no tape drive on these machines).

It implements rescue_runtime.tape.st.DeviceIO, decodes every ioctl with its own copy of the
numbers and struct layouts of linux/mtio.h (x86-64, taken from the kernel header, not from the
code under test), records each operation and keeps the tape's content, so what was written
can be read back through the same driver calls.
"""

from __future__ import annotations

import errno
import struct
from dataclasses import dataclass, field

# From linux/mtio.h on x86-64 (checked with a C program printing them).
MTIOCTOP = 0x40086D01
MTIOCGET = 0x80306D02
MTOP = struct.Struct("<hxxi")  # short mt_op, 2 bytes padding, int mt_count
MTGET = struct.Struct("<qqqqqii")
OPS = {1: "MTFSF", 2: "MTBSF", 5: "MTWEOF", 6: "MTREW", 20: "MTSETBLK", 32: "MTCOMPRESSION"}
GMT_BOT, GMT_EOD, GMT_ONLINE = 0x40000000, 0x08000000, 0x01000000
FM = None  # a filemark in `content`


@dataclass
class FakeTapeDevice:
    content: list[bytes | None] = field(default_factory=list)
    ops: list[tuple[object, ...]] = field(default_factory=list)
    position: int = 0
    block_size: int = 0
    compression: bool = False
    capacity: int | None = None  # bytes before ENOSPC
    fds: int = 0

    def open(self, path: str, flags: int) -> int:
        self.ops.append(("open", path))
        self.fds += 1
        return 100 + self.fds

    def close(self, fd: int) -> None:
        self.ops.append(("close",))

    def _written(self) -> int:
        return sum(len(item) for item in self.content if item is not None)

    def write(self, fd: int, data: bytes) -> int:
        if self.block_size:
            assert len(data) % self.block_size == 0, "fixed mode takes whole blocks"
            records = [data[i : i + self.block_size] for i in range(0, len(data), self.block_size)]
        else:
            records = [data]
        if self.capacity is not None and self._written() + len(data) > self.capacity:
            self.ops.append(("write-failed", len(data)))
            raise OSError(errno.ENOSPC, "No space left on device")
        del self.content[self.position :]  # a tape write ends the data there
        self.content.extend(records)
        self.position = len(self.content)
        self.ops.append(("write", len(data), self.block_size, self.compression))
        return len(data)

    def read(self, fd: int, size: int) -> bytes:
        assert self.block_size == 0, "the reader uses variable mode"
        if self.position >= len(self.content):
            self.ops.append(("read-eod",))
            raise OSError(errno.EIO, "Input/output error")
        item = self.content[self.position]
        self.position += 1
        if item is None:
            return b""
        if len(item) > size:
            raise OSError(errno.ENOMEM, "Cannot allocate memory")
        return item

    def _space(self, count: int, step: int) -> None:
        passed = 0
        while passed < count:
            if step > 0 and self.position >= len(self.content):
                raise OSError(errno.EIO, "Input/output error")
            if step < 0 and self.position == 0:
                raise OSError(errno.EIO, "Input/output error")
            if step < 0:
                self.position -= 1
            item = self.content[self.position]
            if step > 0:
                self.position += 1
            if item is None:
                passed += 1

    def ioctl(self, fd: int, request: int, arg: bytes) -> bytes:
        if request == MTIOCGET:
            assert len(arg) == MTGET.size
            gstat = GMT_ONLINE
            gstat |= GMT_BOT if self.position == 0 else 0
            gstat |= GMT_EOD if self.position >= len(self.content) else 0
            self.ops.append(("MTIOCGET",))
            return MTGET.pack(1, 0, self.block_size, gstat, 0, 0, 0)
        assert request == MTIOCTOP, hex(request)
        op, count = MTOP.unpack(arg)
        name = OPS[op]
        self.ops.append((name, count))
        if name == "MTREW":
            self.position = 0
        elif name == "MTSETBLK":
            self.block_size = count
        elif name == "MTCOMPRESSION":
            self.compression = bool(count)
        elif name == "MTWEOF":
            del self.content[self.position :]
            self.content.extend([FM] * count)
            self.position = len(self.content)
        elif name == "MTFSF":
            self._space(count, 1)
        elif name == "MTBSF":
            self._space(count, -1)
        return arg
