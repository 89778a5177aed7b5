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
from pathlib import Path

import pytest

from mkmedia.qemu import Guest, Machine
from tests.e2e import cycle
from tests.e2e.conftest import Backups, by_source
from tests.e2e.source import SPECS
from tests.rescue_build import BOOT_TIMEOUT, PROMPT

pytestmark = [pytest.mark.vm, pytest.mark.e2e]

# What a passphrase prompt looks like on the console (cryptsetup's askpass in the initramfs).
PASSPHRASE_PROMPT = "Please unlock disk"


def state_diff(expected: dict[str, object], actual: dict[str, object]) -> str:
    def lines(state: dict[str, object]) -> list[str]:
        return json.dumps(state, indent=1, sort_keys=True).splitlines()

    return "\n".join(difflib.unified_diff(lines(expected), lines(actual), "source", "recovered"))


# One xdist group per source: its backup (the session's `backups`) is made by one worker.
@pytest.mark.parametrize("name", [pytest.param(n, marks=by_source(n)) for n in sorted(SPECS)])
def test_unattended_recovery_brings_back_every_byte_and_identity(
    name: str, tmp_path: Path, backups: Backups
) -> None:
    machine, backup = backups(name)
    luks = name == "uefi-raid-luks"
    _, verdict = cycle.recover_and_verify(
        machine,
        backup,
        tmp_path,
        machine.spec.disks_mib,  # same sizes and serials as the source's
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
        # `btrfs subvolume list` names a nested one from its parent (@, id 256): srv/nested
        subvolumes = verdict.state["btrfs_subvolumes"]
        assert any(s.endswith("top level 256 path srv/nested") for s in subvolumes)  # type: ignore[attr-defined]


# In the rescue shell: start recover in a session of its own, wait until recreate has finished
# its first component (a state file, recover/recreate.py), then kill the whole session
# (recover and the recreate script it runs) with SIGKILL, as a crash would.
START_RECOVER = (
    "setsid sh -c 'echo $$ > /tmp/first.pid; exec mkmedia recover --unattended' "
    "> /tmp/first.log 2>&1 < /dev/null &"
)
KILL_DURING_RECREATE = """
pid=$(cat /tmp/first.pid)
n=0
until ls /var/lib/mkmedia/recreate/state-*/* >/dev/null 2>&1; do
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "recover ended before recreate began"; cat /tmp/first.log; exit 1
    fi
    n=$((n + 1)); [ "$n" -lt 3600 ] || { echo "no component finished"; exit 1; }
    sleep 0.5
done
kill -KILL -- "-$pid"
sleep 1
ls /var/lib/mkmedia/recreate/state-*/
"""

# its log to a file: the progress bars would come back through the console otherwise
SECOND_RECOVER = (
    "mkmedia recover --unattended > /tmp/second.log 2>&1; rc=$?; "
    "tail -n 80 /tmp/second.log; (exit $rc)"
)

# before QEMU is killed: what recover left mounted and active goes down, the disks are synced
TAKE_DOWN = (
    "sync; if findmnt /mnt/local >/dev/null; then umount -R /mnt/local; fi; "
    "vgchange -q -an vgsys; sync"
)


@by_source("bios-lvm")
def test_interrupted_recreate_is_continued_by_a_second_run(
    tmp_path: Path, backups: Backups
) -> None:
    machine, backup = backups("bios-lvm")
    phases = cycle.Phases(tmp_path)
    kernel, initrd, append = cycle.menu_entry(backup.iso, "rescue", tmp_path / "boot")
    disks = cycle.blank_disks(tmp_path / "target", machine.spec.disks_mib)
    rescue = Machine(
        firmware="bios",
        memory_mib=cycle.MEMORY_MIB,
        cpus=cycle.PIPELINE_CPUS,
        kernel=kernel,
        initrd=initrd,
        append=append,
        cdrom=backup.iso,  # the backup is on it
        disks=disks,
        network=False,
    )
    deadline = BOOT_TIMEOUT + 2 * cycle.RECOVER_DEADLINE
    log = tmp_path / "rescue.log"
    with Guest(rescue, deadline=deadline, console_log=log, name="rescue") as guest:
        guest.expect(PROMPT, BOOT_TIMEOUT)
        with phases.phase("bios-lvm: recover, killed during recreate"):
            status, out = guest.shell(START_RECOVER)
            assert status == 0, out
            status, killed_at = guest.shell(KILL_DURING_RECREATE, timeout=cycle.RECOVER_DEADLINE)
            assert status == 0, killed_at
        with phases.phase("bios-lvm: second recover"):
            status, out = guest.shell(SECOND_RECOVER, cycle.RECOVER_DEADLINE)
            assert status == 0, f"the second recover failed:\n{out[-6000:]}"
        status, done = guest.shell("ls /var/lib/mkmedia/recreate/state-*/")
        # the kill came before the end of recreate, so the second run had work left
        assert len(killed_at.split()) < len(done.split()), (killed_at, done)
        status, out = guest.shell(TAKE_DOWN)
        assert status == 0, out
    with phases.phase("bios-lvm: boot the recovered disks + compare"):
        verdict = cycle.verify_from_inside(machine, disks, backup.manifest, tmp_path / "verify")
    assert verdict.rc == 0 and " 0 differences" in verdict.line, (
        f"{verdict.line}\n{verdict.differences[:6000]}"
    )
    assert verdict.state == backup.state, state_diff(backup.state, verdict.state)
