"""The full recovery cycle on real machines: a dead machine boots again from its rescue media,
with every file and every piece of metadata as it was at backup time.

Per source machine (tests/e2e/source.py): boot it and run `mkmedia mkbackup` inside it with
the backup in the ISO (BACKUP_URL=iso:///backup, BOOT_DEFAULT=unattended,
UNATTENDED_ACTION=poweroff), recording a treemanifest of what the backup covers and the
identities of its storage stack; boot that ISO on blank disks of the same sizes and serials
(same firmware, one UEFI variable store for the rescue boot and the recovered machine, as real
NVRAM) with nobody at the keyboard until it powers off; boot the recovered disks alone, where
a job compares them with the manifest and prints its verdict on the serial console.
"""

from __future__ import annotations

import difflib
import json
import shutil
from pathlib import Path

import pytest

from tests.e2e import cycle
from tests.e2e.source import SPECS, source_machine

pytestmark = [pytest.mark.vm, pytest.mark.e2e]

# What a passphrase prompt looks like on the console (cryptsetup's askpass in the initramfs).
PASSPHRASE_PROMPT = "Please unlock disk"


def state_diff(expected: dict[str, object], actual: dict[str, object]) -> str:
    def lines(state: dict[str, object]) -> list[str]:
        return json.dumps(state, indent=1, sort_keys=True).splitlines()

    return "\n".join(difflib.unified_diff(lines(expected), lines(actual), "source", "recovered"))


@pytest.mark.parametrize("name", sorted(SPECS))
def test_unattended_recovery_brings_back_every_byte_and_identity(name: str, tmp_path: Path) -> None:
    machine = source_machine(name, log_dir=tmp_path)
    phases = cycle.Phases(tmp_path)
    with phases.phase(f"{name}: boot + mkbackup on the source"):
        backup = cycle.backup_on_source(machine, tmp_path / "backup")
    shutil.rmtree(backup.source_disks[0].parent)  # the source is gone: a dead machine
    disks = cycle.blank_disks(tmp_path / "target", machine.spec.disks_mib)
    nvram = tmp_path / "target" / "OVMF_VARS.fd" if machine.spec.firmware == "uefi" else None
    with phases.phase(f"{name}: unattended recover from the ISO"):
        cycle.recover_unattended(
            machine, backup.iso, disks, console_log=tmp_path / "rescue.log", vars_file=nvram
        )
    luks = name == "uefi-raid-luks"
    with phases.phase(f"{name}: boot the recovered disks + compare"):
        verdict = cycle.verify_from_inside(
            machine,
            disks,
            backup.manifest,
            tmp_path / "verify",
            vars_file=nvram,
            extra=cycle.LUKS_CHECK if luks else "",
        )
    assert verdict.rc == 0 and " 0 differences" in verdict.line, (
        f"{verdict.line}\n{verdict.differences[:6000]}"
    )
    assert verdict.state == backup.state, state_diff(backup.state, verdict.state)
    if luks:
        status = (verdict.job / "luks.txt").read_text()
        assert "is active" in status and "key file opens it" in status, status
        assert PASSPHRASE_PROMPT not in verdict.console
    if name == "uefi-btrfs":  # part of the state compared above; present, not just equal
        assert "path @" in str(verdict.state["btrfs_default"])
        assert any("path @/srv/nested" in s for s in verdict.state["btrfs_subvolumes"])  # type: ignore[attr-defined]
