"""Work units for pytest-xdist (`make test` runs `-n 2 --dist loadgroup`).

Each xdist worker is its own process with its own session- and module-scoped fixtures, and
QEMU guests use one core each, so two workers on two cores halve the suite's wall time only if
no expensive fixture is made twice and the longest units start first:
- a test without an explicit `xdist_group` mark is grouped with its module (its module-scoped
  guests and builds are made once); tests that share a session fixture across modules (the
  e2e backups, tests/e2e/conftest.py) carry an explicit group and so land on one worker;
- under xdist the units are ordered longest first (a rough cost per kind of test), so neither
  worker is left with a long e2e unit at the end while the other idles.
The order only changes under xdist; a serial run (`-n0`) keeps the collection order.
"""

from __future__ import annotations

import pytest

GROUP = "xdist_group"

# A rough guess of seconds per test by mark; only the order of units depends on it.
COST = {"e2e": 600.0, "vm": 120.0, "integration": 5.0}
DEFAULT_COST = 0.1


def group_of(item: pytest.Item) -> str | None:
    """The xdist group of a test, None when it has none; named as xdist names it (several
    marks: their names sorted, joined by "_")."""
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


# tryfirst: xdist's own hook turns the marks into the work units' names after this one.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    units: dict[str, float] = {}
    for item in items:
        unit = group_of(item)
        if unit is None:
            unit = item.nodeid.split("::", 1)[0]
            item.add_marker(pytest.mark.xdist_group(unit))
        units[unit] = units.get(unit, 0.0) + cost(item)
    if not hasattr(config, "workerinput"):
        return
    # Longest unit first, each unit's tests in their order; the controller takes the units in
    # the order their first test arrives (run with --no-loadscope-reorder, see the Makefile).
    first = {unit: n for n, unit in enumerate(units)}
    items.sort(key=lambda item: (-units[str(group_of(item))], first[str(group_of(item))]))
