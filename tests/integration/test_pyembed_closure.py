"""The module closure computed by the target interpreter for a small package of our own."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from mkmedia.pyembed.embed import DEFAULT_EXCLUDES, module_closure, startup_modules
from rescue_runtime.errors import ConfigError, MkmediaError

pytestmark = pytest.mark.integration

PYTHON = "/usr/bin/python3"


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One scan cache for the module: the stdlib is parsed once."""
    return tmp_path_factory.mktemp("scan-cache") / "scan.json"


def make_package(root: Path, name: str, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / name / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    name = "pyembed_demo_pkg"
    make_package(
        tmp_path,
        name,
        {
            "__init__.py": "import json\n",
            "sub/__init__.py": "",
            "sub/mod.py": """
                from typing import TYPE_CHECKING
                if TYPE_CHECKING:
                    import sqlite3
                def lazy():
                    import csv
                    import pydoc  # excluded for the stdlib, kept for our own imports
                """,
            "data/not_a_package.py": "import tkinter\n",
        },
    )
    # The builder locates the package with its own import system.
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def test_closure_of_own_package(package: str, cache: Path) -> None:
    closure = module_closure(PYTHON, packages=[package], scan_cache=cache)
    names = closure.names
    assert {package, f"{package}.sub", f"{package}.sub.mod"} <= names
    assert {"json", "json.decoder", "csv", "pydoc", "encodings.utf_8", "runpy"} <= names
    assert f"{package}.data.not_a_package" not in names  # not a package: no __init__.py
    assert "sqlite3" not in names and "tkinter" not in names
    kinds = {m.name: m.kind for m in closure.modules}
    assert kinds["_json"] == "extension"
    assert kinds["sys"] == "builtin"
    assert kinds["csv"] == "source"


def test_startup_set_is_measured() -> None:
    startup = set(startup_modules(PYTHON))
    assert {"site", "os", "posixpath", "codecs", "io", "abc", "encodings.utf_8"} <= startup
    assert "__main__" not in startup


def test_excludes_cut_stdlib_edges_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: Path
) -> None:
    # shutil imports tarfile lazily; an exclude cuts that edge, but never our own import.
    make_package(tmp_path, "pyembed_a_pkg", {"__init__.py": "import shutil\n"})
    make_package(tmp_path, "pyembed_b_pkg", {"__init__.py": "import shutil, tarfile\n"})
    monkeypatch.syspath_prepend(str(tmp_path))
    assert (
        "tarfile"
        in module_closure(PYTHON, packages=["pyembed_a_pkg"], excludes=(), scan_cache=cache).names
    )
    cut = module_closure(
        PYTHON, packages=["pyembed_a_pkg"], excludes=("tarfile",), scan_cache=cache
    )
    assert "shutil" in cut.names and "tarfile" not in cut.names
    kept = module_closure(
        PYTHON, packages=["pyembed_b_pkg"], excludes=("tarfile",), scan_cache=cache
    )
    assert "tarfile" in kept.names
    assert "pydoc" in DEFAULT_EXCLUDES


def test_third_party_import_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: Path
) -> None:
    make_package(tmp_path, "pyembed_bad_pkg", {"__init__.py": "def f():\n    import yaml\n"})
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(MkmediaError, match=r"yaml \(.*pyembed_bad_pkg/__init__.py:2\)"):
        module_closure(PYTHON, packages=["pyembed_bad_pkg"], scan_cache=cache)


def test_scan_cache_notices_changed_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: Path
) -> None:
    make_package(tmp_path, "pyembed_c_pkg", {"__init__.py": "import os\n"})
    monkeypatch.syspath_prepend(str(tmp_path))
    before = module_closure(PYTHON, packages=["pyembed_c_pkg"], scan_cache=cache)
    assert "csv" not in before.names
    # A different size and mtime: the cached scan of the old file must not be used.
    init = tmp_path / "pyembed_c_pkg" / "__init__.py"
    init.write_text("import os\nimport csv\n")
    os.utime(init, ns=(1, 1))
    after = module_closure(PYTHON, packages=["pyembed_c_pkg"], scan_cache=cache)
    assert "csv" in after.names


def test_unknown_extra_module_is_refused(package: str) -> None:
    with pytest.raises(ConfigError, match="no_such_module_xyz"):
        module_closure(PYTHON, packages=[package], extra_modules=["no_such_module_xyz"])
