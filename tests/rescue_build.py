"""Build rescue media through the real `mkmedia` command, for the tests that boot them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VM_RECIPE = REPO / "tests" / "data" / "recipes" / "vm-test.yaml"
EPOCH = "1700000000"


def build_media(
    workdir: Path,
    *,
    output: str,
    recipe: Path = VM_RECIPE,
    sets: tuple[str, ...] = (),
    epoch: str | None = EPOCH,
    keep_build_dir: bool = False,
) -> Path:
    """Run `mkmedia build` into workdir/out; return the output directory (host subdirectory)."""
    out = workdir / "out"
    config_dir = workdir / "etc"
    config_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["MKMEDIA_LOCK_FILE"] = str(workdir / "lock")
    if epoch is not None:
        env["SOURCE_DATE_EPOCH"] = epoch
    argv = [
        sys.executable,
        "-m",
        "mkmedia",
        "build",
        str(recipe),
        "-c",
        str(config_dir),
        "--log-file",
        str(workdir / "build.log"),
        "--set",
        f"OUTPUT={output}",
        "--set",
        f"OUTPUT_URL=file://{out}",
        "--set",
        f"TMPDIR={workdir}",
        "--set",
        "OUTPUT_PREFIX=rescue",
        # the build saves the host's layout: into the test's directory, not the shared default
        "--set",
        f"LAYOUT_DIR={workdir / 'layout'}",
    ]
    if keep_build_dir:
        argv.append("--keep-build-dir")
    for item in sets:
        argv += ["--set", item]
    result = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, env=env, check=False)
    if result.returncode != 0:
        raise AssertionError(
            f"mkmedia build failed ({result.returncode}):\n{result.stderr[-4000:]}"
        )
    return out / "rescue"
