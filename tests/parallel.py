"""Work units for pytest-xdist (`make test` runs `-n 2 --dist loadgroup`).

Each xdist worker is its own process with its own session- and module-scoped fixtures, and
QEMU guests use one core each, so two workers on two cores halve the suite's wall time only if
no expensive fixture is made twice and the longest units start first:
- a test without an explicit `xdist_group` mark is grouped with its module (its module-scoped
  guests and builds are made once); tests that share a session fixture across modules (the
  e2e backups, tests/e2e/conftest.py) carry an explicit group and so land on one worker;
- under xdist the units are handed out longest first (COST: a rough guess per kind of test;
  the units with an e2e test before those with only vm tests, and so on), and a worker
  starting a long test gets a short unit to follow it, so the long units stay free for
  whichever worker is free first and neither is left idle at the end.
xdist's own loadgroup names a group by changing the test's node id, which pytest 9.2 ignores;
so the workers write each test's unit to a file (the directory is passed in their workerinput)
and UnitScheduling, which replaces xdist's scheduler for `--dist loadgroup`, reads it.
A serial run (`-n0`) keeps the collection order.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from xdist.workermanage import WorkerController

GROUP = "xdist_group"

# A rough guess of seconds per test by mark; only the order of units depends on it.
COST = {"e2e": 600.0, "vm": 120.0, "integration": 5.0}
DEFAULT_COST = 0.1
# A test this costly gets a short unit queued after it rather than a long one (see _reschedule).
LONG = 60.0

_UNITS = "mkmedia_units_dir"  # workerinput key: where the workers write their unit maps
_UNIT = pytest.StashKey[str]()
_COST = pytest.StashKey[float]()
_DIR = pytest.StashKey[Path]()


def group_of(item: pytest.Item) -> str | None:
    """The explicit xdist group of a test, None when it has none; named as xdist names it
    (several marks: their names sorted, joined by "_")."""
    names = {
        str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
        for mark in item.iter_markers(GROUP)
    }
    return "_".join(sorted(names)) if names else None


def cost(item: pytest.Item) -> float:
    return max(
        (value for name, value in COST.items() if item.get_closest_marker(name)),
        default=DEFAULT_COST,
    )


# tryfirst: before xdist's own hook (which renames grouped tests on pytest before 9.2).
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    units: dict[str, tuple[float, float]] = {}  # unit -> (its costliest test, the sum)
    for item in items:
        unit = item.stash[_UNIT] = group_of(item) or item.nodeid.split("::", 1)[0]
        item.stash[_COST] = cost(item)
        top, total = units.get(unit, (0.0, 0.0))
        units[unit] = max(top, item.stash[_COST]), total + item.stash[_COST]
    if not hasattr(config, "workerinput"):
        return
    # The units with an e2e test first, then those with a vm test, ..., the costliest of a kind
    # first (a module of many short checks on one boot must not overtake a recovery cycle);
    # each unit's tests in their order. UnitScheduling hands out the units in this order.
    first = {unit: n for n, unit in enumerate(units)}

    def rank(item: pytest.Item) -> tuple[float, float, int]:
        top, total = units[item.stash[_UNIT]]
        return -top, -total, first[item.stash[_UNIT]]

    items.sort(key=rank)


# tryfirst: the map must be on disk before xdist tells the controller the collection is done.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    workerinput: dict[str, Any] = getattr(session.config, "workerinput", {})
    if _UNITS not in workerinput:
        return
    units = {item.nodeid: [item.stash[_UNIT], item.stash[_COST]] for item in session.items}
    final = Path(workerinput[_UNITS]) / f"{workerinput['workerid']}.json"
    partial = final.with_suffix(".partial")
    partial.write_text(json.dumps(units))
    partial.rename(final)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: WorkerController) -> None:
    config = node.config
    if _DIR not in config.stash:
        config.stash[_DIR] = Path(tempfile.mkdtemp(prefix="mkmedia-xdist-units-"))
    node.workerinput[_UNITS] = str(config.stash[_DIR])


def pytest_unconfigure(config: pytest.Config) -> None:
    if _DIR in config.stash:
        shutil.rmtree(config.stash[_DIR], ignore_errors=True)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if config.getvalue("dist") != "loadgroup" or _DIR not in config.stash:
        return None
    from tests.xdist_units import UnitScheduling  # xdist is imported only when it runs

    return UnitScheduling(config, log, config.stash[_DIR])


def read_units(directory: Path) -> dict[str, tuple[str, float]]:
    """The map one worker wrote (both collect the same tests): node id -> (unit, cost)."""
    for path in sorted(directory.glob("*.json")):
        return {
            nodeid: (unit, value) for nodeid, (unit, value) in json.loads(path.read_text()).items()
        }
    return {}
