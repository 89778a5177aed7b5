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
from tests.e2e.conftest import RESCUE_GROUP
from tests.e2e.cycle import blank_disks
from tests.e2e.source_rescue import SourceRescue
from tests.rescue_build import BOOT_TIMEOUT, PROMPT

# one worker builds the rescue ISO inside the source (tests/e2e/conftest.py)
pytestmark = [pytest.mark.vm, pytest.mark.e2e, pytest.mark.xdist_group(RESCUE_GROUP)]


def test_media_built_on_the_source_boots_on_blank_disks(
    bios_lvm_rescue: SourceRescue, tmp_path: Path
) -> None:
    built = bios_lvm_rescue
    machine, iso = built.machine, built.iso
    layout_sha = hashlib.sha256(built.layout.read_bytes()).hexdigest()

    blank = blank_disks(tmp_path, machine.spec.disks_mib)
    rescue = Machine(firmware="bios", cdrom=iso, boot_order="d", disks=blank)
    log_path = tmp_path / "rescue.log"
    with Guest(rescue, deadline=BOOT_TIMEOUT + 600, console_log=log_path, name="rescue") as guest:
        guest.expect(PROMPT, BOOT_TIMEOUT)
        status, out = guest.shell("uname -r; sha256sum /var/lib/mkmedia/layout/layout.json")
        assert status == 0, out
        assert built.kernel in out
        assert layout_sha in out, out
        status, out = guest.shell("mkmedia layout show | head -40")
        assert status == 0 and "vgsys" in out, out
        status, out = guest.shell("lsblk -dno NAME,SIZE /dev/vda")
        assert status == 0 and "6G" in out, out
