"""Put this checkout's mkmedia into a source machine's job share, as an installed copy would be.

The source machine runs Debian 12's own python3 (the same minor version as this machine's), so
the dependencies are taken from this checkout's virtual environment (pure Python, or wheels
built for this CPython and glibc) and put on PYTHONPATH beside mkmedia and rescue_runtime.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

from tests.conftest import REPO

# Top-level import names of mkmedia's run-time dependencies (pyproject.toml).
DEPENDENCIES = ("yaml", "_yaml", "jinja2", "markupsafe", "elftools", "zstandard", "pycdlib", "tqdm")


def stage_mkmedia(job_dir: Path, repo: Path = REPO) -> Path:
    """Copy mkmedia, rescue_runtime (of the checkout `repo`) and their dependencies to
    job_dir/py; returns that path."""
    target = job_dir / "py"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in ("mkmedia", "rescue_runtime"):
        shutil.copytree(repo / package, target / package, ignore=ignore)
    for name in DEPENDENCIES:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            if name == "_yaml":  # PyYAML's optional C extension
                continue
            raise RuntimeError(f"the dependency {name} is not importable here")
        origin = Path(spec.origin)
        if origin.name == "__init__.py":
            shutil.copytree(origin.parent, target / name, ignore=ignore)
        else:
            shutil.copy2(origin, target / origin.name)
    return target


def mkmedia_command(*args: str) -> str:
    """The shell command running the staged mkmedia inside the guest."""
    quoted = " ".join(f"'{a}'" for a in args)
    return f"PYTHONPATH=/run/job/py python3 -m mkmedia {quoted}"


def built_iso(out_dir: Path) -> Path:
    """The ISO a build wrote below OUTPUT_URL's directory (named by the run's manifest)."""
    manifest = json.loads(next(out_dir.glob("*/manifest.json")).read_text())
    (name,) = [Path(a["path"]).name for a in manifest["artifacts"] if a["kind"] == "iso"]
    (iso,) = out_dir.glob(f"*/{name}")
    return iso
