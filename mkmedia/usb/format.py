"""`mkmedia format DEVICE|IMAGE`: make a USB stick (or an image of one) ready for OUTPUT=USB."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from mkmedia.usb import bootloader, fs, menu, safety
from mkmedia.usb.partition import MIB_SECTORS, SECTOR, Plan, plan, write_table
from rescue_runtime.backup import usbstick
from rescue_runtime.errors import UsageError
from rescue_runtime.layout.model import Layout

MARKER_DIR = "/mkmedia"
FORMAT_RECORD = f"/{usbstick.FORMAT_RECORD}"  # usb:// backups check the stick by it


def marker_path(stick_id: str) -> str:
    return f"{MARKER_DIR}/stick-{stick_id}"


def check_target(
    target: safety.Target, layout: Layout | None, *, force: bool
) -> list[safety.Refusal]:
    """Raise on any refusal --force cannot overrule (or any at all without --force); return
    the overruled ones, for the user to see."""
    found = safety.refusals(target, safety.layout_disks(layout), safety.root_disks())
    hard = [r for r in found if not r.forcible or not force]
    if hard:
        reasons = " ".join(r.reason for r in hard)
        forcible = all(r.forcible for r in hard)
        raise UsageError(
            f"mkmedia format refuses {target.path}: {reasons}",
            hint="Name the right device (lsblk shows model, size and serial); --force overrules "
            "only the saved-layout and not-removable checks."
            if forcible
            else "Unmount it (and detach its loop devices) first, or name another device.",
        )
    return found


def confirm(target: safety.Target, ask: Callable[[str], str], say: Callable[[str], None]) -> None:
    say(safety.describe(target))
    answer = ask(f"Erase everything on {target.path}? Type YES to go on: ")
    if answer.strip() != "YES":
        raise UsageError(
            f"Not formatting {target.path}: the answer was not YES.",
            hint="Answer YES to format, or pass --yes (the safety checks still run).",
        )


def format_stick(
    path: Path,
    *,
    mode: str = "both",
    secure_boot: bool = False,
    layout: Layout | None = None,
    force: bool = False,
    yes: bool = False,
    size: int | None = None,
    ask: Callable[[str], str] = input,
    say: Callable[[str], None] = print,
) -> Plan:
    """Check, ask, then partition and fill `path`; return the partition plan written."""
    if size is not None:
        if path.exists() and not path.is_file():
            raise UsageError(f"--size creates an image file, but {path} is not a regular file.")
        if not path.exists():
            with open(path, "wb") as stream:
                stream.truncate(size)
    target = safety.inspect(path)
    for refusal in check_target(target, layout, force=force):
        say(f"warning: --force overrules: {refusal.reason}")
    if not yes:
        confirm(target, ask, say)
    if size is not None and target.size < size:
        os.truncate(path, size)
        target.size = size
    layout_plan = plan(target.size // SECTOR, mode)
    work = Path(tempfile.mkdtemp(prefix="mkmedia-format-"))
    try:
        _write(path, layout_plan, work, secure_boot=secure_boot)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return layout_plan


def _write(path: Path, layout: Plan, work: Path, *, secure_boot: bool) -> None:
    stick_id = secrets.token_hex(8)
    marker = marker_path(stick_id)
    early = bootloader.early_config(work, marker)
    core = None
    if layout.part("bios_grub"):
        core = bootloader.build_pc_core(work / "core.img", early)
    esp_files = bootloader.esp_files(work, early, secure_boot=secure_boot)
    # the data partition's first contents
    tree = work / "data"
    for directory in ("boot/grub", "mkmedia", "rescue", usbstick.BACKUP_DIR):
        (tree / directory).mkdir(parents=True)
    (tree / marker.lstrip("/")).write_text(f"mkmedia USB stick {stick_id}\n")
    record = {"id": stick_id, "mode": layout.mode, "secure_boot": secure_boot}
    (tree / FORMAT_RECORD.lstrip("/")).write_text(json.dumps(record, indent=2) + "\n")
    (tree / menu.MENU.lstrip("/")).write_text(menu.render(menu.Index()))
    (tree / menu.INDEX.lstrip("/")).write_text(menu.Index().dump())
    # old signatures in the first MiB (an ISO's, an old MBR's) must not outlive the format
    with open(path, "r+b") as stream:
        stream.write(bytes(MIB_SECTORS * SECTOR))
        stream.flush()
        os.fsync(stream.fileno())
    write_table(path, layout)
    if core is not None:
        bios_grub = layout.part("bios_grub")
        assert bios_grub is not None
        bootloader.install_pc(path, core, bios_grub)
    esp = layout.part("esp")
    if esp is not None:
        fs.make_esp(path, esp, esp_files)
    fs.make_data(path, layout.data(), tree)
    with open(path, "rb") as stream:
        os.fsync(stream.fileno())
    fs.settle(path)


def parse_size(text: str) -> int:
    """1G, 512M, 300MiB, 1000000000 -> bytes."""
    units = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
    cleaned = text.strip().upper().removesuffix("IB").removesuffix("B")
    try:
        if cleaned and cleaned[-1] in units:
            return int(float(cleaned[:-1]) * units[cleaned[-1]])
        return int(cleaned)
    except ValueError:
        raise UsageError(
            f"--size {text!r} is not a size.", hint="Write it like 512M or 2G."
        ) from None
