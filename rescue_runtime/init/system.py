"""Pseudo file systems, udev and kernel modules of the rescue system."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from rescue_runtime.run import run, spawn, which

log = logging.getLogger("mkmedia.init")

PRINTK = Path("/proc/sys/kernel/printk")
# Kernel messages of a level below this reach the consoles: 4 lets errors and worse through
# (as the `quiet` boot option does) and keeps routine ones off; dmesg keeps them all.
CONSOLE_LOGLEVEL = 4

MOUNTS = [
    # (type, target, options, mode of the mount point)
    ("proc", "/proc", "nosuid,nodev,noexec", 0o555),
    ("sysfs", "/sys", "nosuid,nodev,noexec", 0o555),
    ("devtmpfs", "/dev", "mode=0755,nosuid", 0o755),
    ("devpts", "/dev/pts", "gid=5,mode=620,ptmxmode=000", 0o755),
    ("tmpfs", "/dev/shm", "nosuid,nodev,mode=1777", 0o1777),
    ("tmpfs", "/run", "nosuid,nodev,mode=0755", 0o755),
]


def is_mounted(target: str) -> bool:
    try:
        with open("/proc/self/mounts") as handle:
            return any(line.split()[1] == target for line in handle if line.strip())
    except OSError:
        return False


def mount_pseudo_filesystems() -> None:
    for fstype, target, options, mode in MOUNTS:
        os.makedirs(target, mode=mode, exist_ok=True)
        if is_mounted(target):
            continue
        run(["mount", "-t", fstype, "-o", options, fstype, target], what=f"mounting {target}")
    if Path("/sys/firmware/efi/efivars").is_dir() and not is_mounted("/sys/firmware/efi/efivars"):
        run(["modprobe", "-q", "efivarfs"], check=False)
        run(["mount", "-t", "efivarfs", "efivarfs", "/sys/firmware/efi/efivars"], check=False)
    # devtmpfs has no /dev/fd (udev's static nodes would): bash's <(...) and /dev/stdin need it.
    for name, source in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):  # fmt: skip
        if not os.path.lexists(f"/dev/{name}"):
            os.symlink(source, f"/dev/{name}")
    for directory in ("/run/mkmedia", "/var/log/mkmedia", "/var/lib/mkmedia", "/tmp", "/mnt/local"):
        os.makedirs(directory, exist_ok=True)
    os.chmod("/tmp", 0o1777)


def quiet_kernel_console(
    debug: bool = False, printk: Path = PRINTK, level: int = CONSOLE_LOGLEVEL
) -> str:
    """Lower the kernel's console log level, the first field of /proc/sys/kernel/printk.

    People type on the consoles: a driver's routine message would land in the middle of
    their command line (or of a shell answer a test reads). The kernel log keeps every
    message for dmesg. A level already as low (`quiet`, `loglevel=`) is left alone, and
    `debug` (mkmedia.debug: someone watches the boot) keeps every message on the consoles.
    """
    if debug:
        return "kept on the consoles (mkmedia.debug)"
    fields = printk.read_text().split()
    current = int(fields[0])
    if current <= level:
        return f"console log level {current} kept"
    printk.write_text(" ".join([str(level), *fields[1:]]) + "\n")
    return f"console log level {current} -> {level}: routine messages only in dmesg"


def load_modules(names: list[str]) -> list[str]:
    """Load the modules with one modprobe (every exec is slow under emulation); return the
    names that are not loaded afterwards (reported, not fatal)."""
    if not names:
        return []
    run(["modprobe", "-a", "-b", *names], check=False)
    return [name for name in names if not module_present(name)]


def module_present(name: str) -> bool:
    """Loaded as a module, or built into the kernel (then /sys/module has it too, mostly)."""
    return Path("/sys/module", name.replace("-", "_")).exists() or _builtin(name)


def _builtin(name: str) -> bool:
    release = os.uname().release
    wanted = name.replace("-", "_")
    try:
        with open(f"/lib/modules/{release}/modules.builtin") as handle:
            return any(
                Path(line.strip()).name.split(".")[0].replace("-", "_") == wanted for line in handle
            )
    except OSError:
        return False


def hardware_modaliases(sys_root: Path = Path("/sys")) -> list[str]:
    """The modalias strings of every device the kernel found (drivers are chosen by these)."""
    aliases = set()
    for path in (sys_root / "devices").rglob("modalias"):
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text:
            aliases.add(text)
    return sorted(aliases)


def load_hardware_drivers() -> None:
    aliases = hardware_modaliases()
    if aliases:
        # -b honours blacklists, -q: an alias without a driver is normal
        run(["modprobe", "-a", "-b", "-q", *aliases], check=False)


def udevd_path() -> str | None:
    for candidate in ("/lib/systemd/systemd-udevd", "/usr/lib/systemd/systemd-udevd"):
        if os.access(candidate, os.X_OK):
            return candidate
    return which("udevd")


def start_udev(settle_seconds: int = 20) -> bool:
    """Start udev and wait (bounded) for it to process the devices; False when there is none."""
    udevd = udevd_path()
    if udevd is None or which("udevadm") is None:
        return False
    spawn([udevd, "--daemon", "--resolve-names=never"])
    run(["udevadm", "trigger", "--type=subsystems", "--action=add"], check=False)
    run(["udevadm", "trigger", "--type=devices", "--action=add"], check=False)
    run(["udevadm", "settle", f"--timeout={settle_seconds}"], check=False)
    return True


def set_hostname(name: str) -> None:
    try:
        Path("/proc/sys/kernel/hostname").write_text(name)
    except OSError as exc:
        log.warning("cannot set the host name to %s: %s", name, exc)
    Path("/etc/hostname").write_text(name + "\n")
