"""A UEFI machine's variable store: a fresh copy per boot, or one file that boots share.

A shell stands in for QEMU (no guest needed): it appends to the variable store QEMU would be
given, as the firmware writes a boot entry into its NVRAM.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mkmedia.qemu import OVMF_VARS, Guest, Machine


class WritesNvram(Machine):
    """Stands in for QEMU: writes one boot entry into the variable store it is given."""

    def argv(self, vars_copy: Path | None) -> list[str]:
        assert vars_copy is not None
        return ["sh", "-c", f"printf entry >> '{vars_copy}'; wc -c < '{vars_copy}'"]


def boot(machine: Machine) -> int:
    """Boot once; the size of the variable store after the boot wrote its entry."""
    with Guest(machine, deadline=60, name="nvram writer") as guest:
        assert guest.wait_exit(30) == 0
        return int(guest.output)


def test_shared_vars_file_keeps_what_each_boot_wrote(tmp_path: Path) -> None:
    if not OVMF_VARS.exists():
        pytest.skip(f"{OVMF_VARS} is missing (Debian package ovmf)")
    template = OVMF_VARS.read_bytes()
    nvram = tmp_path / "machine" / "OVMF_VARS.fd"
    assert boot(WritesNvram(firmware="uefi", network=False, vars_file=nvram)) > 0
    assert nvram.read_bytes() == template + b"entry"  # made from the template
    assert boot(WritesNvram(firmware="uefi", network=False, vars_file=nvram)) > 0
    assert nvram.read_bytes() == template + b"entryentry"  # the second boot saw the first's


def test_without_vars_file_each_boot_starts_from_the_template(tmp_path: Path) -> None:
    if not OVMF_VARS.exists():
        pytest.skip(f"{OVMF_VARS} is missing (Debian package ovmf)")
    machine = WritesNvram(firmware="uefi", network=False)
    size = OVMF_VARS.stat().st_size
    assert [boot(machine), boot(machine)] == [size + 5, size + 5]  # nothing carried over
