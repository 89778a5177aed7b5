"""The end-to-end tests' shared artifacts: building rescue media inside a source machine
costs minutes under emulation, so each source's is built once per session.

Under pytest-xdist (`make test` runs two workers) a session fixture is made once per worker:
every test that uses a source's backup carries that source's xdist group (`by_source(name)`),
and every test of `bios_lvm_rescue` the group RESCUE_GROUP, so one worker makes each. A test
outside the group is stopped with the mark it needs (serial runs too, so a missing mark shows
at once).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable

import pytest

from tests import parallel
from tests.ciskip import SLOW, opt_in
from tests.e2e import cycle, source
from tests.e2e.source_rescue import SourceRescue, build_rescue_in_source

RESCUE_GROUP = "bios-lvm-rescue"

# The test being set up or run: the session fixtures below check its group.
_current: list[pytest.Item] = []


def by_source(name: str) -> pytest.MarkDecorator:
    """The xdist group of the tests that use source `name`'s backup."""
    return pytest.mark.xdist_group(name)


def _require_group(group: str, what: str) -> None:
    item = _current[-1]
    if parallel.group_of(item) != group:
        pytest.fail(
            f"{item.nodeid} uses {what} but is not in the xdist group {group!r} (it is in "
            f"{parallel.group_of(item)!r}); mark it @pytest.mark.xdist_group({group!r}) (for a "
            "parametrized test: pytest.param(..., marks=...)) so that one worker makes it "
            "(tests/e2e/conftest.py)",
            pytrace=False,
        )


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    _current[:] = [item]
    if "bios_lvm_rescue" in item.fixturenames:  # type: ignore[attr-defined]
        _require_group(RESCUE_GROUP, "the bios_lvm_rescue fixture")


@pytest.fixture(scope="session")
def bios_lvm_rescue(tmp_path_factory: pytest.TempPathFactory) -> SourceRescue:
    """The BIOS + LVM source's rescue ISO, built inside it (its overlay disks beside)."""
    # The recover cycles (test_recover_cycle.py) build media inside the sources, boot them on
    # blank disks and run finalize there too: these two more make a fresh CI run too long.
    opt_in(SLOW, "a rescue ISO built inside the BIOS+LVM source for two more e2e checks")
    work = tmp_path_factory.mktemp("bios-lvm-rescue")
    return build_rescue_in_source(source.source_machine("bios-lvm", log_dir=work), work)


Backups = Callable[[str], tuple[source.SourceMachine, cycle.Backup]]


@pytest.fixture(scope="session")
def backups(tmp_path_factory: pytest.TempPathFactory) -> Backups:
    """The source machine of a kind and its backup ISO, made once per test session and shared
    by every e2e module (recover cycles, migrations); the ISO is mkmedia's output, so each run
    makes its own."""
    made: dict[str, tuple[source.SourceMachine, cycle.Backup]] = {}

    def backup_of(name: str) -> tuple[source.SourceMachine, cycle.Backup]:
        _require_group(name, f"the {name} backup")
        if name not in made:
            directory = tmp_path_factory.mktemp(f"backup-{name}")
            machine = source.source_machine(name, log_dir=directory)
            with cycle.Phases(directory).phase(f"{name}: boot + mkbackup on the source"):
                backup = cycle.backup_on_source(machine, directory)
            shutil.rmtree(backup.source_disks[0].parent)  # the source is gone: a dead machine
            made[name] = machine, backup
        return made[name]

    return backup_of
