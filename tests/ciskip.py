"""Under CI (`CI=true`) a skipped test is a failed test, except for explicit opt-ins.

A skip usually means a host prerequisite is missing (a tool, a kernel, root); on CI the set-up
must have installed it, so the skip would hide a test that never ran. Tests that are too costly
for every run call `opt_in(VARIABLE, why)`: only those may skip under CI, and their message says
how to turn them on. tests/conftest.py loads the hooks below.
"""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest

# The opt-in of tests that prove again, in another way, what the default run proves already
# (more firmware and boot-path variants, a second e2e route): each is named in its test.
SLOW = "MKMEDIA_SLOW_TESTS"

# Set on the skip exception of an opt-in; any other skip fails under CI.
_OPT_IN = "mkmedia_opt_in"


def ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def opt_in(variable: str, why: str) -> None:
    """Skip the calling test unless `variable` is set (non-empty) in the environment."""
    if not os.environ.get(variable):
        skip = pytest.skip.Exception(
            f"opt-in: {why}; set {variable}=1 to run it", _use_item_location=True
        )
        setattr(skip, _OPT_IN, True)
        raise skip


def _failure(reason: str) -> str:
    return (
        f"skipped under CI=true, which counts as a failure: {reason}. CI must provide every "
        "prerequisite (scripts/setup-host installs the packages, tests run as root); only "
        "opt-in tests (tests/ciskip.py opt_in) may skip there."
    )


def _reason(longrepr: object) -> str:
    # a skip's report holds (path, line, "Skipped: reason")
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    opted_in = call.excinfo is not None and getattr(call.excinfo.value, _OPT_IN, False)
    # an xfail(run=False) reports as skipped too: that is not a missing prerequisite
    if ci() and report.skipped and not opted_in and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = _failure(_reason(report.longrepr))
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    report = yield
    # a module-level pytest.skip(allow_module_level=True) skips at collection
    if ci() and report.skipped:
        report.outcome = "failed"
        report.longrepr = _failure(_reason(report.longrepr))
    return report
