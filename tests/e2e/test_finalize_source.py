"""`mkmedia finalizeonly` makes a real machine boot again: the BIOS + LVM source's rescue ISO
(built inside the source) boots with the source's own disks, whose MBR boot code is then
zeroed, so they cannot boot; mountonly mounts them, finalizeonly must bind what the chroot
needs, put GRUB back with the restored system's grub-install, skip the initramfs and
grub.cfg (nothing changed), copy the logs, and undo its binds. Then the disks alone must boot
the source's kernel to its job service, whose verdict comes from inside."""

from __future__ import annotations

from pathlib import Path

import pytest

from mkmedia.qemu import Guest, Machine
from tests.e2e import source
from tests.e2e.conftest import RESCUE_GROUP
from tests.e2e.source_rescue import SourceRescue
from tests.rescue_build import BOOT_TIMEOUT, PROMPT

# one worker builds the rescue ISO inside the source (tests/e2e/conftest.py)
pytestmark = [pytest.mark.vm, pytest.mark.e2e, pytest.mark.xdist_group(RESCUE_GROUP)]

STEP = 900.0  # grub-install under software emulation: generous, not a timing assertion
BINDS = "/mnt/local/run /mnt/local/dev/pts /mnt/local/dev /mnt/local/sys /mnt/local/proc"
BOOT_CODE = "head -c 440 /dev/vda | tr -d '\\0' | wc -c"
CHECK_JOB = """#!/bin/sh
echo "kernel $(uname -r)"
stat -c 'log %a %n' /var/log/mkmedia/*
"""


def sh(guest: Guest, command: str, timeout: float = 300.0) -> str:
    status, out = guest.shell(command, timeout=timeout)
    assert status == 0, f"{command}: status {status}\n{out}"
    return out


def test_finalizeonly_makes_the_source_disks_boot_again(
    bios_lvm_rescue: SourceRescue, tmp_path: Path
) -> None:
    built = bios_lvm_rescue
    machine = built.machine
    rescue = Machine(firmware="bios", cdrom=built.iso, boot_order="d", disks=built.disks)
    log = tmp_path / "rescue.log"
    with Guest(rescue, deadline=BOOT_TIMEOUT + 2 * STEP, console_log=log, name="rescue") as guest:
        guest.expect(PROMPT, BOOT_TIMEOUT)
        sh(guest, "dmesg -n 1")
        status, out = guest.shell("mkmedia finalizeonly --unattended")
        assert status != 0 and "`mkmedia mountonly` or `mkmedia recover` first" in out, out
        sh(guest, "dd if=/dev/zero of=/dev/vda bs=440 count=1 conv=notrunc status=none; sync")
        assert sh(guest, BOOT_CODE).strip() == "0"
        sh(guest, "mkmedia mountonly")
        sh(guest, f"umount {BINDS}")  # finalize must bind them itself
        out = sh(guest, "mkmedia finalizeonly --unattended", timeout=STEP)
        assert "GRUB installed on /dev/vda" in out, out
        assert "initramfs not rebuilt" in out and "grub-mkconfig not run" in out, out
        assert "GRUB" in sh(guest, "head -c 440 /dev/vda | tr -dc 'A-Z'")
        status, out = guest.shell("findmnt /mnt/local/proc || findmnt /mnt/local/dev")
        assert status != 0, f"finalize left its binds: {out}"
        sh(guest, "mkmedia umount")
        guest.sendline("sync; echo o > /proc/sysrq-trigger")
        guest.wait_exit(120)

    job = tmp_path / "job"
    job.mkdir()
    (job / "run.sh").write_text(CHECK_JOB)
    (job / "run.sh").chmod(0o755)
    (job / "poweroff").touch()
    console = tmp_path / "recovered.log"
    with source.boot_source(machine, built.disks, job, console_log=console) as guest:
        guest.expect(r"MKMEDIA-JOB-END rc=(\d+)", timeout=STEP)
        assert "MKMEDIA-JOB-END rc=0" in guest.output, (job / "run.log").read_text()
        guest.wait_exit(300)
    result = (job / "run.log").read_text()
    assert f"kernel {built.kernel}" in result, result
    assert "log 600 /var/log/mkmedia/init.log" in result, result
