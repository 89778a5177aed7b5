"""The set of outputs is replaced as a whole: a run that fails while writing its media (here a
full disk, for real: a small tmpfs) leaves the previous media and the manifest that names them
exactly as they were, with no staged file behind; a run that succeeds replaces all of it."""

from __future__ import annotations

import json
import shutil
import sys
import types
from pathlib import Path

import pytest

from mkmedia import cli, emit
from mkmedia.emit.ramdisk import RamdiskEmitter
from mkmedia.session.artifacts import Artifact, sha256_file
from rescue_runtime.errors import MkmediaError
from rescue_runtime.run import run
from tests.rescue_build import VM_RECIPE, build_media

pytestmark = pytest.mark.integration


def listing(directory: Path) -> dict[str, str]:
    return {p.name: sha256_file(p) for p in sorted(directory.iterdir()) if p.is_file()}


def manifest_matches(directory: Path) -> bool:
    manifest = json.loads((directory / "manifest.json").read_text())
    return all(
        sha256_file(directory / Path(a["path"]).name) == a["sha256"]
        for a in manifest["artifacts"]
        if a["kind"] != "manifest"
    )


def test_full_disk_keeps_the_previous_set(tmp_path: Path) -> None:
    first = build_media(tmp_path / "first", output="RAMDISK", epoch="1700000000")
    set_size = sum(p.stat().st_size for p in first.iterdir())
    small = tmp_path / "small"
    small.mkdir()
    # Room for the previous set and half of a new one: the new set cannot be written.
    run(["mount", "-t", "tmpfs", "-o", f"size={set_size * 3 // 2}", "tmpfs", str(small)])
    try:
        shutil.copytree(first, small / "rescue")
        before = listing(small / "rescue")
        assert manifest_matches(small / "rescue")
        with pytest.raises(AssertionError, match="No space left on device"):
            build_media(
                tmp_path / "second",
                output="RAMDISK",
                epoch="1700000999",  # other bytes than the first set
                sets=(f"OUTPUT_URL=file://{small}",),
            )
        assert listing(small / "rescue") == before
        assert manifest_matches(small / "rescue")
        assert sorted(p.name for p in small.iterdir()) == ["rescue"]  # no staging left
    finally:
        run(["umount", str(small)])


def test_a_new_set_replaces_the_old_one_whole(tmp_path: Path) -> None:
    out = build_media(tmp_path / "a", output="RAMDISK", epoch="1700000000")
    old = listing(out)
    build_media(
        tmp_path / "b",
        output="RAMDISK",
        epoch="1700000999",
        sets=(f"OUTPUT_URL=file://{out.parent}",),
    )
    new = listing(out)
    assert new.keys() == old.keys() and new["rescue-initrd.img"] != old["rescue-initrd.img"]
    assert manifest_matches(out)
    assert sorted(p.name for p in out.parent.iterdir()) == ["rescue"]


class BurnFailsAfterWriting(RamdiskEmitter):
    """RAMDISK media written in full, then the step fails, as a CDROM burn or a USB write
    can fail after the image is complete (no such drive here: the failure is raised)."""

    def write(self, *, kernel: Path, initrd: Path, work_dir: Path) -> list[Artifact]:
        written = super().write(kernel=kernel, initrd=initrd, work_dir=work_dir)
        raise MkmediaError(f"writing the medium failed after {len(written)} files")


def test_failure_after_the_media_were_written_keeps_the_previous_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = build_media(tmp_path / "a", output="RAMDISK", epoch="1700000000")
    before = listing(out)
    module = types.ModuleType("failing_emitter")
    module.EMITTER = BurnFailsAfterWriting  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "failing_emitter", module)
    monkeypatch.setitem(emit._EMITTERS, "RAMDISK", "failing_emitter")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000999")
    monkeypatch.setenv("MKMEDIA_LOCK_FILE", str(tmp_path / "lock"))
    code = cli.main(
        ["build", str(VM_RECIPE), "-c", str(tmp_path / "a" / "etc"),
         "--log-file", str(tmp_path / "b.log"), "--set", "OUTPUT=RAMDISK",
         "--set", f"OUTPUT_URL=file://{out.parent}", "--set", f"TMPDIR={tmp_path}",
         "--set", "OUTPUT_PREFIX=rescue", "--set", f"LAYOUT_DIR={tmp_path / 'layout'}"]
    )  # fmt: skip
    assert code != 0
    assert listing(out) == before
    assert manifest_matches(out)
    assert sorted(p.name for p in out.parent.iterdir()) == ["rescue"]
