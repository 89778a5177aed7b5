"""tests/parallel.py: under two xdist workers a module's tests share a worker, an explicit
group spans modules, and the costliest units come first; serial runs keep their order.

Each case runs a real pytest (with xdist) on a few tiny test files.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from rescue_runtime.run import run

REPO = Path(__file__).resolve().parents[2]

CONFTEST = """
import json
pytest_plugins = ["tests.parallel"]

def pytest_collection_finish(session):
    name = getattr(session.config, "workerinput", {}).get("workerid", "serial")
    with open(f"order-{name}.json", "w") as out:
        json.dump([item.nodeid for item in session.items], out)
"""

FOUR = "".join(f"def test_{n}():\n    pass\n\n" for n in range(1, 5))
# six vm tests cost more than the one e2e test (tests/parallel.py COST), yet go after it
SIX = "".join(f"def test_{n}():\n    pass\n\n" for n in range(1, 7))
FILES = {
    "test_a_unit.py": FOUR,
    "test_b_vm.py": "import pytest\npytestmark = pytest.mark.vm\n\n" + SIX,
    "test_c_shared.py": "import pytest\n\n@pytest.mark.xdist_group('src')\n" + FOUR,
    "test_d_e2e.py": (
        "import pytest\n\n@pytest.mark.e2e\n@pytest.mark.xdist_group('src')\n"
        "def test_1():\n    pass\n"
    ),
}


def pytest_in(tmp_path: Path, *extra: str) -> str:
    (tmp_path / "conftest.py").write_text(CONFTEST)
    for name, text in FILES.items():
        (tmp_path / name).write_text(text)
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-v", *extra]
    result = run(argv, check=False, cwd=tmp_path, env={"PYTHONPATH": str(REPO)})
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    return out


def order(tmp_path: Path, name: str) -> list[str]:
    return list(json.loads((tmp_path / f"order-{name}.json").read_text()))


def test_two_workers_keep_modules_and_groups_together_costliest_first(tmp_path: Path) -> None:
    out = pytest_in(tmp_path, "-n", "2", "--dist", "loadgroup")
    assert "scheduling tests via UnitScheduling" in out, out
    worker = {nodeid: gw for gw, nodeid in re.findall(r"\[(gw\d)\].*PASSED (\S+)", out)}
    assert len(worker) == 15, out
    # a module's own tests (its module fixtures) on one worker; the explicit group across two
    for module in ("test_a_unit.py", "test_b_vm.py"):
        assert len({worker[f"{module}::test_{n}"] for n in range(1, 5)}) == 1, out
    assert worker["test_c_shared.py::test_1"] == worker["test_d_e2e.py::test_1"]
    # both workers hand the same order to the controller: the e2e group, the vm module, ...
    names = [f"test_b_vm.py::test_{n}" for n in range(1, 7)]
    names += [f"test_a_unit.py::test_{n}" for n in range(1, 5)]
    expected = ["test_c_shared.py::test_1", "test_d_e2e.py::test_1", *names]
    expected += [f"test_c_shared.py::test_{n}" for n in range(2, 5)]
    assert order(tmp_path, "gw0") == order(tmp_path, "gw1") == expected


def test_a_serial_run_keeps_the_collection_order(tmp_path: Path) -> None:
    pytest_in(tmp_path, "-n0")
    expected = [f"test_a_unit.py::test_{n}" for n in range(1, 5)]
    expected += [f"test_b_vm.py::test_{n}" for n in range(1, 7)]
    expected += [f"test_c_shared.py::test_{n}" for n in range(1, 5)]
    assert order(tmp_path, "serial") == [*expected, "test_d_e2e.py::test_1"]
