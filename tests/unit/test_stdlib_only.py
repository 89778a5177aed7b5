"""rescue_runtime/ imports the standard library and itself, nothing else (not even mkmedia).

Every import counts, including those inside functions, `try:` blocks and `if TYPE_CHECKING:`:
the embedded interpreter carries only the standard library.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

RUNTIME = Path(__file__).resolve().parents[2] / "rescue_runtime"
OWN = "rescue_runtime"


def foreign_imports(source: str, filename: str) -> list[str]:
    """`file:line: name` for each absolute import outside the stdlib and rescue_runtime."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None))
            in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names = [node.args[0].value]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            if top and top != OWN and top not in sys.stdlib_module_names:
                found.append(f"{filename}:{node.lineno}: {name}")
    return found


def runtime_files() -> list[Path]:
    return sorted(RUNTIME.rglob("*.py"))


def test_runtime_has_modules() -> None:
    assert len(runtime_files()) >= 3  # the scan below must look at something


@pytest.mark.parametrize("path", runtime_files(), ids=lambda p: str(p.relative_to(RUNTIME)))
def test_runtime_module_uses_stdlib_only(path: Path) -> None:
    assert foreign_imports(path.read_text(), str(path)) == []


@pytest.mark.parametrize(
    "source",
    [
        "import yaml\n",
        "from mkmedia.run import run\n",
        "def f():\n    import zstandard\n",
        "try:\n    import elftools.elf\nexcept ImportError:\n    pass\n",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import jinja2\n",
        "import importlib\nimportlib.import_module('tqdm')\n",
    ],
)
def test_checker_catches_foreign_imports(source: str) -> None:
    assert len(foreign_imports(source, "x.py")) == 1


def test_checker_allows_stdlib_and_own() -> None:
    source = (
        "import os, json, tarfile\nfrom collections import abc\n"
        "from rescue_runtime.errors import MkmediaError\nfrom . import run\n"
        "def f():\n    import subprocess\n"
    )
    assert foreign_imports(source, "x.py") == []
