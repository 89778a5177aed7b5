"""The end-to-end tests' shared artifacts: building rescue media inside a source machine
costs minutes under emulation, so each source's is built once per session."""

from __future__ import annotations

import pytest

from tests.e2e import source
from tests.e2e.source_rescue import SourceRescue, build_rescue_in_source


@pytest.fixture(scope="session")
def bios_lvm_rescue(tmp_path_factory: pytest.TempPathFactory) -> SourceRescue:
    """The BIOS + LVM source's rescue ISO, built inside it (its overlay disks beside)."""
    work = tmp_path_factory.mktemp("bios-lvm-rescue")
    return build_rescue_in_source(source.source_machine("bios-lvm", log_dir=work), work)
