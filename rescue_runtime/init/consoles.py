"""Banner and root shells on every console (VGA and the serial consoles of the command line)."""

from __future__ import annotations

import logging
import os
import time
from subprocess import Popen

from rescue_runtime.rescueconf import RescueConfig
from rescue_runtime.run import spawn, which

log = logging.getLogger("mkmedia.init")

PROMPT = r"RESCUE \h:\w # "


def banner(config: RescueConfig) -> str:
    backup = config.backup if config.backup != "NONE" else "none configured"
    where = f" at {config.backup_url}" if config.backup_url else ""
    lines = [
        "",
        "=" * 72,
        f"  mkmedia rescue system for host {config.hostname}",
        f"  made {config.created or 'at an unknown time'} with mkmedia {config.mkmedia_version}"
        + (f" from {config.os_pretty_name}" if config.os_pretty_name else ""),
        f"  backup: {backup}{where}",
        "",
        "  mkmedia recover      recover this machine (asks before touching disks)",
        "  mkmedia mountonly    open and mount the saved layout under /mnt/local for repair",
        "  mkmedia umount       take down what mountonly brought up",
        "  mkmedia dump         show this rescue system's settings",
        "=" * 72,
        "",
    ]
    return "\n".join(lines)


def write_to_consoles(devices: list[str], text: str) -> None:
    data = text.replace("\n", "\r\n").encode()
    for device in devices:
        try:
            fd = os.open(device, os.O_WRONLY | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError:
            continue
        try:
            os.write(fd, data)
        except OSError:
            pass
        finally:
            os.close(fd)


def shell_environment(device: str, hostname: str) -> dict[str, str]:
    return {
        "HOME": "/root",
        "TERM": "linux" if device.startswith("/dev/tty") and device[8:9].isdigit() else "vt100",
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "PS1": PROMPT,
        "HOSTNAME": hostname,
        "LANG": "C.UTF-8",
    }


def start_shell(device: str, hostname: str) -> Popen[bytes] | None:
    shell = which("bash") or which("sh")
    if shell is None:
        log.error("no shell in the rescue system")
        return None
    try:
        fd = os.open(device, os.O_RDWR | os.O_NOCTTY)
    except OSError as exc:
        log.warning("cannot open console %s: %s", device, exc)
        return None
    try:
        return spawn(
            [shell, "--login"] if shell.endswith("bash") else [shell, "-l"],
            stdin=fd,
            stdout=fd,
            stderr=fd,
            env=shell_environment(device, hostname),
            controlling_tty=device != "/dev/console",
        )
    finally:
        os.close(fd)


def supervise_shells(devices: list[str], hostname: str) -> None:
    """PID 1's last job: keep a shell on every console and reap every child, forever."""
    shells: dict[int, str] = {}
    last_start: dict[str, float] = {}
    for device in devices:
        proc = start_shell(device, hostname)
        if proc:
            shells[proc.pid] = device
            last_start[device] = time.monotonic()
    while True:
        try:
            pid, _status = os.waitpid(-1, 0)
        except ChildProcessError:
            time.sleep(1)
            pid = 0
        except InterruptedError:
            continue
        if pid not in shells:
            if not shells:
                time.sleep(1)
            continue
        device = shells.pop(pid)
        # a shell that exits at once again and again would spin; slow the respawn down
        if time.monotonic() - last_start.get(device, 0) < 2:
            time.sleep(2)
        proc = start_shell(device, hostname)
        if proc:
            shells[proc.pid] = device
            last_start[device] = time.monotonic()
