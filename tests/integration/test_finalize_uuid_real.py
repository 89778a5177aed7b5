"""A UUID that changed is found by the real blkid on real file systems (image files made by
mke2fs and mkswap here), and every fstab reference follows it."""

from __future__ import annotations

from pathlib import Path

import pytest

from rescue_runtime.layout.model import Filesystem, Layout
from rescue_runtime.recover.finalize_rewrite import rewrite_references, uuid_changes
from rescue_runtime.run import run
from tests.files import write_files

pytestmark = pytest.mark.integration

SAVED = "6f1c1d2e-3a4b-4c5d-8e9f-0a1b2c3d4e5f"
SWAP = "0d9c8b7a-6f5e-4d3c-9b2a-1f0e9d8c7b6a"
MADE = "12345678-9abc-4def-8123-456789abcdef"  # what the "recreated" file system got


def image(path: Path, size: int = 8 << 20) -> str:
    with path.open("wb") as handle:
        handle.truncate(size)
    return str(path)


def test_blkid_finds_the_changed_uuid_and_fstab_follows(tmp_path: Path) -> None:
    root = image(tmp_path / "root.img")
    swap = image(tmp_path / "swap.img")
    run(["mke2fs", "-F", "-q", "-t", "ext4", "-U", MADE, root])
    run(["mkswap", "--uuid", SWAP, swap])  # kept its UUID
    layout = Layout(
        filesystems=[
            Filesystem(device=root, fstype="ext4", uuid=SAVED),
            Filesystem(device=swap, fstype="swap", uuid=SWAP),
        ]
    )
    changes = uuid_changes(layout)
    assert changes == {SAVED.replace("-", ""): MADE}

    target = write_files(
        tmp_path / "target",
        {"etc/fstab": f"UUID={SAVED} / ext4 defaults 0 1\nUUID={SWAP} none swap sw 0 0\n"},
    )
    result = rewrite_references(layout, target, {}, changes, {})
    assert (target / "etc/fstab").read_text() == (
        f"UUID={MADE} / ext4 defaults 0 1\nUUID={SWAP} none swap sw 0 0\n"
    )
    assert f"UUID {SAVED} is now {MADE}" in result.grub_reasons
