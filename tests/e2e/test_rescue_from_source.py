"""Rescue media built on a real installed machine boots on blank replacement disks.

`mkmedia build` runs inside the BIOS + LVM source machine (its own kernel, binaries and disk
layout; mkmedia from this checkout on the job share), the ISO comes out on the share, and a new
machine with the same kind of blank disks boots it: the verdict comes from inside the rescue
system, which must carry the source's kernel and the layout the source saved, byte for byte.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from mkmedia.qemu import Guest, Machine
from tests.e2e import source
from tests.e2e.cycle import blank_disks
from tests.e2e.guest_mkmedia import built_iso, mkmedia_command, stage_mkmedia
from tests.rescue_build import BOOT_TIMEOUT, PROMPT

pytestmark = [pytest.mark.vm, pytest.mark.e2e]

BUILD_JOB = """#!/bin/sh
set -e
{build} --log-file /run/job/mkmedia.log \\
    --set OUTPUT_URL=file:///run/job/out --set BOOT_DEFAULT=rescue --set BOOT_TIMEOUT=2
cp /var/lib/mkmedia/layout/layout.json /run/job/layout.json
uname -r > /run/job/kernel.txt
"""


def test_media_built_on_the_source_boots_on_blank_disks(tmp_path: Path) -> None:
    machine = source.source_machine("bios-lvm", log_dir=tmp_path)
    job = tmp_path / "job"
    job.mkdir()
    stage_mkmedia(job)
    (job / "run.sh").write_text(BUILD_JOB.format(build=mkmedia_command("build")))
    (job / "run.sh").chmod(0o755)
    (job / "poweroff").touch()
    disks = machine.overlays(tmp_path / "disks")
    with source.boot_source(machine, disks, job, console_log=tmp_path / "source.log") as guest:
        guest.expect(r"MKMEDIA-JOB-END rc=(\d+)", timeout=source.PROVISION_DEADLINE)
        log = (job / "run.log").read_text()
        assert "MKMEDIA-JOB-END rc=0" in guest.output, log[-3000:]
        guest.wait_exit(300)
    iso = built_iso(job / "out")
    layout_sha = hashlib.sha256((job / "layout.json").read_bytes()).hexdigest()

    blank = blank_disks(tmp_path, machine.spec.disks_mib)
    rescue = Machine(firmware="bios", cdrom=iso, boot_order="d", disks=blank)
    log_path = tmp_path / "rescue.log"
    with Guest(rescue, deadline=BOOT_TIMEOUT + 600, console_log=log_path, name="rescue") as guest:
        guest.expect(PROMPT, BOOT_TIMEOUT)
        status, out = guest.shell("uname -r; sha256sum /var/lib/mkmedia/layout/layout.json")
        assert status == 0, out
        assert (job / "kernel.txt").read_text().strip() in out
        assert layout_sha in out, out
        status, out = guest.shell("mkmedia layout show | head -40")
        assert status == 0 and "vgsys" in out, out
        status, out = guest.shell("lsblk -dno NAME,SIZE /dev/vda")
        assert status == 0 and "6G" in out, out
