"""What recover's resizing and exclusion take from a real NETFS backup (real tar, zstd, ext4
on a loop device): the used bytes per file system in the manifest, keyed by the layout's
component id, and a restore that leaves a left-out mount point's content out."""

from __future__ import annotations

import json
import os
from pathlib import Path

from rescue_runtime.backup.manifest import MANIFEST_NAME, used_bytes
from rescue_runtime.backup.netfs import Netfs
from rescue_runtime.layout.model import Layout
from tests.integration.test_backup_netfs import backup_of, quiet, source
from tests.loopfs import BACKUP_TEST_MARKS

pytestmark = BACKUP_TEST_MARKS
__all__ = ["source"]  # the fixture


def test_used_bytes_are_recorded_and_a_left_out_mount_point_is_not_restored(
    source: tuple[Path, Layout], tmp_path: Path
) -> None:
    mnt, layout = source
    (mnt / "big").mkdir()
    (mnt / "big" / "blob").write_bytes(os.urandom(3 << 20))
    st = os.statvfs(mnt)
    used_now = (st.f_blocks - st.f_bfree) * st.f_frsize
    backup_dir = tmp_path / "backups" / "host"
    manifest = backup_of(mnt, layout, backup_dir)
    (fs,) = layout.filesystems
    written = json.loads((backup_dir / MANIFEST_NAME).read_text())
    assert set(written["used_bytes"]) == {fs.id}
    assert used_bytes(written)[fs.id] == used_now  # nothing changed it in between
    assert used_now > 3 << 20

    target = tmp_path / "restored"
    target.mkdir()
    result = Netfs.restore(backup_dir, target, progress=quiet, skip_mounts=["/big"])
    assert (target / "big").is_dir() and list((target / "big").iterdir()) == []
    assert (target / "a" / "file.txt").is_file()  # the rest is there
    assert result["files"] == int(manifest["files"]) - 1  # type: ignore[call-overload]
