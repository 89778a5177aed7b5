"""The CI hook (tests/ciskip.py): under CI=true a plain skip fails, an opt-in skip does not.

Each case runs a real pytest on a tiny test file, with the hook loaded as the suite loads it.
"""

from __future__ import annotations

import sys
from pathlib import Path

from rescue_runtime.run import run

REPO = Path(__file__).resolve().parents[2]
VARIABLE = "MKMEDIA_CISKIP_SELFTEST"

TESTS = f'''
import pytest
from tests.ciskip import opt_in

def test_plain_skip():
    pytest.skip("a tool is missing")

@pytest.mark.skipif(True, reason="needs root")
def test_skipif():
    pass

def test_opt_in():
    opt_in("{VARIABLE}", "reads 4 GiB")

def test_passes():
    pass
'''

MODULE_SKIP = """
import pytest
pytest.skip("chroot needs root", allow_module_level=True)

def test_never():
    pass
"""


def pytest_on(
    tmp_path: Path, source: str, *, ci: str, opt_in: str = "", extra: tuple[str, ...] = ()
) -> str:
    (tmp_path / "test_cases.py").write_text(source)
    argv = [sys.executable, "-m", "pytest", "-p", "tests.ciskip", "-p", "no:cacheprovider"]
    result = run(
        [*argv, "-rA", "-q", *extra, "test_cases.py"],
        check=False,
        cwd=tmp_path,
        env={"CI": ci, VARIABLE: opt_in, "PYTHONPATH": str(REPO)},
    )
    return result.stdout + result.stderr


def test_without_ci_every_skip_is_a_skip(tmp_path: Path) -> None:
    out = pytest_on(tmp_path, TESTS, ci="")
    assert "1 passed, 3 skipped" in out, out
    assert "FAILED" not in out and "ERROR" not in out, out
    out = pytest_on(tmp_path, MODULE_SKIP, ci="")
    assert "1 skipped" in out and "ERROR" not in out, out


def test_under_ci_a_plain_skip_fails_and_an_opt_in_skips(tmp_path: Path) -> None:
    out = pytest_on(tmp_path, TESTS, ci="true")
    assert "FAILED test_cases.py::test_plain_skip - skipped under CI=true" in out, out
    assert "a tool is missing" in out  # the reason stays in the failure
    # a skipif marker skips during set-up: that becomes an error, a failure as well
    assert "test_cases.py::test_skipif - skipped under CI=true" in out, out
    # only the opt-in skips, and it says how to turn it on
    assert f"opt-in: reads 4 GiB; set {VARIABLE}=1 to run it" in out, out
    assert "1 failed, 1 passed, 1 skipped, 1 error" in out, out


def test_under_ci_with_two_xdist_workers_the_skips_fail_the_same(tmp_path: Path) -> None:
    """`make test` runs two workers: the reports the workers make carry the failures."""
    out = pytest_on(tmp_path, TESTS, ci="true", extra=("-n", "2"))
    assert "FAILED test_cases.py::test_plain_skip - skipped under CI=true" in out, out
    assert "ERROR test_cases.py::test_skipif - skipped under CI=true" in out, out
    assert "1 failed, 1 passed, 1 skipped, 1 error" in out, out
    out = pytest_on(tmp_path, MODULE_SKIP, ci="true", extra=("-n", "2"))
    assert "ERROR test_cases.py - skipped under CI=true" in out and "1 error" in out, out


def test_under_ci_a_module_level_skip_fails_the_collection(tmp_path: Path) -> None:
    out = pytest_on(tmp_path, MODULE_SKIP, ci="true")
    assert "ERROR test_cases.py - skipped under CI=true" in out, out
    assert "chroot needs root" in out and "1 error" in out, out


def test_an_opt_in_runs_when_its_variable_is_set(tmp_path: Path) -> None:
    out = pytest_on(tmp_path, TESTS, ci="true", opt_in="1")
    assert "PASSED test_cases.py::test_opt_in" in out, out
