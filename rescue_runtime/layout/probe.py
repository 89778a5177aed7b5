"""How capture reaches the machine: run a storage tool, read a file, list a directory.

`SystemProbe` runs the real tools through rescue_runtime.run.run(). A tool that is not
installed gives None (capture records a note and leaves that part empty); a tool that is
installed but fails raises CommandError naming it. Tests replay recorded outputs through a
probe of their own with the same three methods.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

from rescue_runtime.errors import CommandError
from rescue_runtime.run import run, which

# LVM complains on stderr about inherited descriptors; the complaint is noise here.
TOOL_ENV = {"LVM_SUPPRESS_FD_WARNINGS": "1", "LC_ALL": "C"}


class DevicesChanged(CommandError):
    """A tool failed on a block device that went away while capture was reading it (a loop
    device detached, a USB stick pulled): the device set changed, so capture reads again."""


def vanished(argv: list[str]) -> list[str]:
    """The /dev paths among `argv` that are gone now: no node, or a loop device with no file
    behind it any more (a detached loop keeps its node)."""
    gone = []
    for arg in argv:
        if not arg.startswith("/dev/"):
            continue
        real = os.path.realpath(arg)
        name = os.path.basename(real)
        detached_loop = name.startswith("loop") and not os.path.exists(
            f"/sys/block/{name}/loop/backing_file"
        )
        if not os.path.exists(real) or (name[4:].isdigit() and detached_loop):
            gone.append(arg)
    return gone


class Probe(Protocol):
    def tool(
        self, argv: list[str], *, what: str, ok_codes: tuple[int, ...] = (0,)
    ) -> str | None: ...

    def read(self, path: str) -> str | None: ...

    def links(self, directory: str) -> dict[str, str]: ...

    def cannot_open(self, device: str) -> str | None: ...


class SystemProbe:
    def tool(self, argv: list[str], *, what: str, ok_codes: tuple[int, ...] = (0,)) -> str | None:
        program = which(argv[0])
        if program is None:
            return None
        try:
            result = run(
                [program, *argv[1:]], env=TOOL_ENV, what=what, timeout=300, ok_codes=ok_codes
            )
        except CommandError as exc:
            gone = vanished(argv)
            if gone:
                raise DevicesChanged(
                    f"{', '.join(gone)} went away while the layout was read ({exc})"
                ) from exc
            raise
        return result.stdout

    def read(self, path: str) -> str | None:
        try:
            return Path(path).read_text(errors="replace")
        except (FileNotFoundError, NotADirectoryError):
            return None

    def cannot_open(self, device: str) -> str | None:
        """Why a block device cannot be opened for reading (None when it can). Containers
        and sandboxes can forbid opening a device that lsblk still lists."""
        try:
            fd = os.open(device, os.O_RDONLY | os.O_NONBLOCK)
        except OSError as exc:
            return exc.strerror or str(exc)
        os.close(fd)
        return None

    def links(self, directory: str) -> dict[str, str]:
        """Symlink name -> resolved target, for /dev/disk/by-id and the like."""
        found: dict[str, str] = {}
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            return found
        for name in names:
            path = os.path.join(directory, name)
            if os.path.islink(path):
                found[path] = os.path.realpath(path)
        return found
