"""tests/cachelock.py: processes that want the same cache entry at once build it once."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

from tests.cachelock import build_once


def _want(directory: str, log: str) -> None:
    """Ask for entry "e"; its build appends to `log` and takes a while (others arrive)."""
    entry = Path(directory) / "e"

    def build() -> Path:
        with open(log, "a") as out:
            out.write("built\n")
        time.sleep(0.5)  # the other processes ask while this one builds
        entry.mkdir()
        return entry

    assert build_once(Path(directory), "e", lambda: entry if entry.exists() else None, build)


def test_concurrent_builders_build_an_entry_once(tmp_path: Path) -> None:
    log = tmp_path / "log"
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_want, args=(str(tmp_path), str(log))) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert [w.exitcode for w in workers] == [0, 0, 0]
    assert log.read_text() == "built\n"
    assert (tmp_path / "e").is_dir()


def test_a_present_entry_is_not_built_again(tmp_path: Path) -> None:
    def build() -> str:
        raise AssertionError("built although present")

    assert build_once(tmp_path, "k", lambda: "there", build) == "there"
    assert not (tmp_path / ".k.lock").exists()  # no lock taken for an entry already there
