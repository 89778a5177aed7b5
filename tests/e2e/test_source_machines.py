"""The source machines of the end-to-end tests are real: they boot from their own disks with
their own GRUB, kernel and initramfs, run the job handed to them, and carry every kind of entry
a recovery must bring back, on each of their file systems. The verdict comes from inside."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.ciskip import opt_in
from tests.e2e import source
from tests.e2e.conftest import by_source
from tests.e2e.source import SPECS, boot_source, source_machine

pytestmark = [pytest.mark.vm, pytest.mark.e2e]

HERE = Path(__file__).resolve().parent

JOB = """#!/bin/sh
set -e
echo "kernel $(uname -r)"
findmnt -rno TARGET,SOURCE,FSTYPE > /run/job/mounts.txt
python3 /run/job/treemanifest.py record {dirs} -o /run/job/manifest.json
echo done
"""


# in its source's xdist group: the worker that makes that source's backup builds it
@pytest.mark.parametrize("name", [pytest.param(n, marks=by_source(n)) for n in sorted(SPECS)])
def test_source_machine_boots_and_carries_the_test_data(name: str, tmp_path: Path) -> None:
    if name != "bios-lvm":
        # Until recover's end-to-end tests use them, the UEFI machines cost a fresh machine
        # about 15 minutes to build for no other test.
        opt_in("MKMEDIA_ALL_SOURCES", f"builds and boots the {name} source machine")
    machine = source_machine(name, log_dir=tmp_path)
    job = tmp_path / "job"
    job.mkdir()
    shutil.copy(HERE / "treemanifest.py", job / "treemanifest.py")
    (job / "run.sh").write_text(JOB.format(dirs=" ".join(machine.spec.data_dirs)))
    (job / "run.sh").chmod(0o755)
    (job / "poweroff").touch()
    disks = machine.overlays(tmp_path / "disks")
    with boot_source(machine, disks, job, console_log=tmp_path / "console.log") as guest:
        guest.expect(r"MKMEDIA-JOB-END rc=(\d+)", timeout=source.PROVISION_DEADLINE)
        assert "MKMEDIA-JOB-END rc=0" in guest.output, (job / "run.log").read_text()
        guest.wait_exit(300)
    log = (job / "run.log").read_text()
    assert f"kernel {machine.kernel_version}" in log
    mounts = (job / "mounts.txt").read_text()
    entries = json.loads((job / "manifest.json").read_text())["entries"]
    for data_dir in machine.spec.data_dirs:
        meta = f"{data_dir}/meta"
        assert entries[f"{meta}/setuid-true"]["mode"] == "4755"
        assert entries[f"{meta}/sticky"]["mode"] == "1777"
        assert "security.capability" in entries[f"{meta}/cap-true"]["xattrs"]
        assert "user.mkmedia.comment" in entries[f"{meta}/xattrs"]["xattrs"]
        assert "system.posix_acl_access" in entries[f"{meta}/acl-file"]["xattrs"]
        assert "system.posix_acl_default" in entries[f"{data_dir}/acl-default"]["xattrs"]
        assert entries[f"{meta}/orphan-owner"]["uid"] == 4242
        assert entries[f"{meta}/fifo"]["type"] == "p"
        assert entries[f"{meta}/null-device"]["rdev"] == [1, 3]
        assert entries[f"{data_dir}/large/sparse.img"]["sparse"] is True
        group = entries[f"{data_dir}/links/b/hardlink"]["link_group"]
        assert group == entries[f"{data_dir}/links/a/original"]["link_group"]
        assert entries[f"{data_dir}/links/dangling-symlink"]["target"] == "/nonexistent/target"
        assert f"{data_dir}/names/-leading-dash" in entries
    # The data directories live on the file systems the spec says (ext4 root, xfs /data, ...).
    for line in mounts.splitlines():
        target, _source, fstype = line.split(" ", 2)
        if target == "/":
            assert fstype in ("ext4", "btrfs", "xfs"), line
