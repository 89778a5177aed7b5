"""Start QEMU guests and drive their serial console (tests, benchmarks and `mkmedia demo`).

This is the one place that owns a QEMU process directly instead of going through run(): the
guest must be killed by its own pid when the caller is done, pass or fail, and a watchdog kills
it when its deadline passes, so no QEMU outlives the test that started it.
"""

from __future__ import annotations

import atexit
import base64
import binascii
import contextlib
import hashlib
import logging
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from rescue_runtime.errors import MissingError, MkmediaError

log = logging.getLogger("mkmedia.qemu")

OVMF_DIR = Path("/usr/share/OVMF")
OVMF_CODE = OVMF_DIR / "OVMF_CODE_4M.fd"
OVMF_VARS = OVMF_DIR / "OVMF_VARS_4M.fd"
OVMF_CODE_SECURE = OVMF_DIR / "OVMF_CODE_4M.ms.fd"
OVMF_VARS_SECURE = OVMF_DIR / "OVMF_VARS_4M.ms.fd"

_live: set[Guest] = set()

# Guest.shell(): how often a garbled answer is read again
_SHELL_READS = 4
_BASE64_LINE = re.compile(r"[A-Za-z0-9+/=]+")


class GuestError(MkmediaError):
    """The guest did not show what was expected in time (message carries the console tail)."""


@dataclass
class Machine:
    """What to boot: firmware, boot media, disks and network. `argv()` turns it into QEMU's."""

    firmware: str = "bios"  # bios | uefi | uefi-secure
    memory_mib: int = 1024
    cpus: int = 1
    kernel: Path | None = None
    initrd: Path | None = None
    append: str = ""
    cdrom: Path | None = None
    # further CD drives with their discs, after `cdrom` (IDE on pc: four drives in all)
    cdroms: list[Path] = field(default_factory=list)
    boot_disk: Path | None = (
        None  # attached as the first hard disk (e.g. a hybrid ISO or USB image)
    )
    # attached as a USB stick (xHCI, usb-storage) and booted first; changes are not kept
    usb_disk: Path | None = None
    disks: list[Path] = field(default_factory=list)  # extra virtio disks
    nvme_disks: list[Path] = field(default_factory=list)  # NVMe disks, after the virtio ones
    network: bool = True
    tftp_dir: Path | None = None
    bootfile: str | None = None
    mac: str | None = None  # the NIC's MAC address (None: QEMU's default 52:54:00:12:34:56)
    # Keep the NIC's iPXE option ROM: SeaBIOS boots from the network only through it. Off by
    # default: OVMF has its own network stack, and shim refuses the ROM's (Secure Boot).
    nic_rom: bool = False
    boot_order: str | None = None  # c (disk), d (cdrom), n (network)
    extra: list[str] = field(default_factory=list)
    # UEFI: the firmware's variable store (NVRAM). None: a fresh copy of the template for this
    # boot only. A path: that file, made from the template when it does not exist yet, kept
    # after the boot, so boots that share it see each other's boot entries as real NVRAM does.
    vars_file: Path | None = None

    def argv(self, vars_copy: Path | None) -> list[str]:
        qemu = shutil.which("qemu-system-x86_64")
        if qemu is None:
            raise MissingError(
                "qemu-system-x86_64 is not installed.",
                hint="Install the Debian package qemu-system-x86.",
            )
        args = [qemu, "-m", str(self.memory_mib), "-smp", str(self.cpus)]
        args += ["-display", "none", "-serial", "stdio", "-monitor", "none", "-no-reboot"]
        if self.firmware == "uefi-secure":
            args += [
                "-machine",
                "q35,smm=on",
                "-global",
                "driver=cfi.pflash01,property=secure,value=on",
            ]
        else:
            args += ["-machine", "q35" if self.firmware.startswith("uefi") else "pc"]
        if self.firmware.startswith("uefi"):
            code = OVMF_CODE_SECURE if self.firmware == "uefi-secure" else OVMF_CODE
            if not code.exists():
                raise MissingError(
                    f"OVMF firmware {code} is missing.", hint="Install the Debian package ovmf."
                )
            assert vars_copy is not None
            args += ["-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={code}"]
            args += ["-drive", f"if=pflash,format=raw,unit=1,file={vars_copy}"]
        if self.kernel:
            args += ["-kernel", str(self.kernel)]
            if self.initrd:
                args += ["-initrd", str(self.initrd)]
            if self.append:
                args += ["-append", self.append]
        # explicit IDE/SATA CD drives: both SeaBIOS and OVMF boot El Torito from the first
        for disc in ([self.cdrom] if self.cdrom else []) + self.cdroms:
            args += ["-drive", f"file={disc},media=cdrom,readonly=on,format=raw"]
        if self.boot_disk:
            args += ["-drive", f"file={self.boot_disk},format=raw,if=none,id=bootdisk,snapshot=on"]
            args += ["-device", "virtio-blk-pci,drive=bootdisk,bootindex=0"]
        if self.usb_disk:
            args += ["-device", "qemu-xhci,id=xhci"]
            args += ["-drive", f"file={self.usb_disk},format=raw,if=none,id=usbdisk,snapshot=on"]
            args += ["-device", "usb-storage,bus=xhci.0,drive=usbdisk,bootindex=0"]
        for index, disk in enumerate(self.disks):
            args += ["-drive", f"file={disk},format={_image_format(disk)},if=none,id=disk{index}"]
            args += ["-device", f"virtio-blk-pci,drive=disk{index},serial=mkmedia-disk{index}"]
        for index, disk in enumerate(self.nvme_disks):
            args += ["-drive", f"file={disk},format={_image_format(disk)},if=none,id=nvme{index}"]
            args += ["-device", f"nvme,drive=nvme{index},serial=mkmedia-nvme{index}"]
        if self.network:
            netdev = "user,id=n0"
            if self.tftp_dir:
                netdev += f",tftp={self.tftp_dir}"
            if self.bootfile:
                netdev += f",bootfile={self.bootfile}"
            nic = "virtio-net-pci,netdev=n0"
            if self.mac:
                nic += f",mac={self.mac}"
            if not self.nic_rom:
                nic += ",romfile="
            args += ["-netdev", netdev, "-device", nic]
        else:
            args += ["-nic", "none"]
        if self.boot_order:
            args += ["-boot", f"order={self.boot_order}"]
        return args + self.extra


def _image_format(disk: Path) -> str:
    """QEMU's format of a disk image: qcow2 (an overlay) by its name, raw otherwise."""
    return "qcow2" if disk.suffix == ".qcow2" else "raw"


def dies_with_parent(argv: list[str]) -> list[str]:
    """argv run so that the kernel kills the process when the thread that started it dies,
    by any signal (SIGKILL and a timeout's SIGTERM included, where atexit never runs): no QEMU
    outlives its test. setpriv (util-linux, always there) sets PR_SET_PDEATHSIG and execs, so
    the pid stays QEMU's own. Start guests from the test's main thread."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return argv
    return [setpriv, "--pdeathsig", "KILL", "--", *argv]


class Guest:
    """A running QEMU with its serial console on a pipe; use as a context manager."""

    def __init__(
        self,
        machine: Machine,
        *,
        deadline: float = 600.0,
        console_log: Path | None = None,
        name: str = "guest",
        shell_dir: str = "/tmp",
    ) -> None:
        self.machine = machine
        self.shell_dir = shell_dir  # where shell() keeps a command's answer in the guest
        self.deadline = deadline
        self.name = name
        self.console_log = console_log
        self._tmp = Path(tempfile.mkdtemp(prefix="mkmedia-qemu-"))
        self._buffer = bytearray()
        self._cond = threading.Condition()
        self._pos = 0  # where the next expect() starts searching
        self._last_answer = ""  # the guest file of the previous shell() answer
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None
        self._watchdog: threading.Timer | None = None
        self._reader: threading.Thread | None = None
        self.started_at = 0.0

    # -- life cycle -------------------------------------------------------------------------
    def start(self) -> Guest:
        vars_copy = None
        if self.machine.firmware.startswith("uefi"):
            source = OVMF_VARS_SECURE if self.machine.firmware == "uefi-secure" else OVMF_VARS
            vars_copy = self.machine.vars_file or self._tmp / "OVMF_VARS.fd"
            if self.machine.vars_file is None or not vars_copy.exists():
                vars_copy.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, vars_copy)
        argv = self.machine.argv(vars_copy)
        log.debug("qemu: %s", " ".join(argv))
        if self.console_log:
            self.console_log.parent.mkdir(parents=True, exist_ok=True)
            self._log_file = open(self.console_log, "wb")  # noqa: SIM115 - closed in close()
        self.started_at = time.monotonic()
        self._proc = subprocess.Popen(
            dies_with_parent(argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        _live.add(self)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._watchdog = threading.Timer(self.deadline, self._expire)
        self._watchdog.daemon = True
        self._watchdog.start()
        return self

    def _expire(self) -> None:
        log.warning("qemu %s: deadline of %.0f s passed, killing it", self.name, self.deadline)
        self.kill()

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        stream = self._proc.stdout
        while True:
            chunk = os.read(stream.fileno(), 65536)
            if not chunk:
                break
            if self._log_file:
                self._log_file.write(chunk)
                self._log_file.flush()
            with self._cond:
                self._buffer.extend(chunk)
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def kill(self) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()  # by its own pid: QEMU is our direct child
            proc.wait(timeout=30)

    def close(self) -> None:
        if self._watchdog:
            self._watchdog.cancel()
        self.kill()
        if self._reader:
            self._reader.join(timeout=10)
        if self._proc and self._proc.stdin:
            with contextlib.suppress(OSError):
                self._proc.stdin.close()
        if self._log_file:
            self._log_file.close()
            self._log_file = None
        shutil.rmtree(self._tmp, ignore_errors=True)
        _live.discard(self)

    def __enter__(self) -> Guest:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def cpu_seconds(self) -> float:
        """Host CPU time QEMU has used so far (all its threads: user + system). On a shared
        machine this counts the emulation's work, where the guest's own clock also counts
        the time its vCPUs waited for a host core (benches)."""
        assert self._proc is not None
        with open(f"/proc/{self._proc.pid}/stat") as f:
            # the fields after the command name, which is in parentheses and may hold spaces
            fields = f.read().rpartition(")")[2].split()
        utime, stime = int(fields[11]), int(fields[12])  # stat(5) fields 14 and 15
        return (utime + stime) / os.sysconf("SC_CLK_TCK")

    def wait_exit(self, timeout: float) -> int | None:
        """Wait for the guest to power off by itself; None if it is still running."""
        assert self._proc is not None
        try:
            status = self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        # QEMU's last console bytes can still be in the pipe: `output` must hold them (on a
        # busy machine the reader thread lags behind the exit)
        if self._reader:
            self._reader.join(timeout=30)
        return status

    # -- console ------------------------------------------------------------------------------
    @property
    def output(self) -> str:
        with self._cond:
            return self._buffer.decode(errors="replace")

    def tail(self, lines: int = 30) -> str:
        text = self.output.replace("\r", "")
        return "\n".join(text.splitlines()[-lines:])

    def expect(self, pattern: str | re.Pattern[str], timeout: float = 120.0) -> re.Match[str]:
        """Wait until `pattern` appears in the console output after the previous match."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        end = time.monotonic() + timeout
        with self._cond:
            while True:
                # surrogateescape round-trips invalid bytes (boot loaders draw boxes in CP437),
                # so the consumed length in bytes below is exact
                text = self._buffer[self._pos :].decode(errors="surrogateescape")
                match = regex.search(text)
                if match:
                    consumed = len(text[: match.end()].encode(errors="surrogateescape"))
                    self._pos += consumed
                    return match
                remaining = end - time.monotonic()
                if remaining <= 0 or not self.running:
                    break
                self._cond.wait(timeout=min(remaining, 1.0))
        state = "still running" if self.running else "QEMU has exited"
        raise GuestError(
            f"The {self.name} did not print {regex.pattern!r} within {timeout:.0f} s ({state}). "
            f"Last console lines:\n{self.tail()}"
        )

    def send(self, text: str) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        self._proc.stdin.write(text.encode())
        self._proc.stdin.flush()

    def sendline(self, line: str) -> None:
        self.send(line + "\n")

    def shell(self, command: str, timeout: float = 120.0) -> tuple[int, str]:
        """Run a command at a shell prompt on the console; return (exit status, output).

        The answer is not read off the console as it scrolls by, where a kernel message or
        the echo of a prompt can land in the middle of it: the command's output (stdout and
        stderr) goes to a file in the guest, which comes back base64-encoded between markers
        unique to this call, with the exit status and the file's sha256. An answer that does
        not match its sha256 is read again.
        """
        token = secrets.token_hex(8)
        answer = f"{self.shell_dir}/.mkmedia-answer-{token}"
        # Built by the shell from two quoted halves, so the echoed command line never holds them.
        start, end = f"R{token}''R", f"Z{token}''Z"
        read = f"echo {start}; base64 {answer}; echo {end}$_mkmedia_rc:$(sha256sum <{answer})"
        cleanup = f"rm -f {self._last_answer}; " if self._last_answer else ""
        # `{ ...\n}` runs it in this shell (cd, export stay) and ends a trailing comment
        self.sendline(f"{cleanup}{{ {command}\n}} >{answer} 2>&1; _mkmedia_rc=$?; {read}")
        self._last_answer = answer
        for _attempt in range(_SHELL_READS):
            decoded = self._answer(token, timeout)
            if decoded is not None:
                status, data = decoded
                return status, data.decode(errors="replace")
            log.debug(
                "qemu %s: answer %s garbled on the console, reading it again", self.name, token
            )
            self.sendline(read)
        raise GuestError(
            f"The {self.name} answered {command!r}, but {_SHELL_READS} readings of the answer "
            f"through the console were garbled. Last console lines:\n{self.tail()}"
        )

    def _answer(self, token: str, timeout: float) -> tuple[int, bytes] | None:
        """The (status, output) of one reading of an answer; None when it came back garbled."""
        match = self.expect(rf"(?s)(.*?)Z{token}Z([^\r\n]*)\r?\n", timeout)
        _, started, body = match.group(1).rpartition(f"R{token}R")
        trailer = re.fullmatch(r"(\d+):([0-9a-f]{64})\s+-\s*", match.group(2))
        if not started or trailer is None:
            return None
        # keep only whole base64 lines: a kernel line or a line spliced by one is dropped,
        # then the digest no longer matches
        lines = [x for x in body.replace("\r", "").split("\n") if _BASE64_LINE.fullmatch(x)]
        try:
            data = base64.b64decode("".join(lines), validate=True)
        except binascii.Error:
            return None
        if hashlib.sha256(data).hexdigest() != trailer.group(2):
            return None
        return int(trailer.group(1)), data

    def elapsed(self) -> float:
        return time.monotonic() - self.started_at


@atexit.register
def _kill_all() -> None:
    for guest in list(_live):
        guest.close()


def which_firmware(names: Sequence[str]) -> list[str]:
    """The firmware kinds from `names` that can run here (OVMF files present)."""
    present = []
    for name in names:
        if (
            name == "bios"
            or (name == "uefi" and OVMF_CODE.exists())
            or (name == "uefi-secure" and OVMF_CODE_SECURE.exists())
        ):
            present.append(name)
    return present
