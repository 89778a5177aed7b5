"""Whole builds through the `mkmedia` command: the default recipe's tree, reproducibility."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from mkmedia.rootfs.check import check_tree
from mkmedia.rootfs.smoke import smoke_run
from mkmedia.session.artifacts import sha256_file
from mkmedia.steps.rootfs import SMOKE_COMMANDS
from tests.rescue_build import REPO, build_media

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="chroot and device nodes need root"),
]


def manifest_of(out: Path) -> dict[str, dict[str, object]]:
    document = json.loads((out / "manifest.json").read_text())
    return {a["kind"]: a for a in document["artifacts"]}


def test_default_recipe_tree_is_self_sufficient(tmp_path: Path) -> None:
    out = build_media(
        tmp_path,
        output="RAMDISK",
        recipe=REPO / "mkmedia" / "data" / "recipes" / "default.yaml",
        keep_build_dir=True,
    )
    (build_dir,) = tmp_path.glob("mkmedia.*")
    tree = build_dir / "rootfs"
    assert check_tree(tree) == [], "every ELF file finds its libraries inside the tree"
    results = smoke_run(tree, SMOKE_COMMANDS)
    assert [str(r) for r in results if not r.ok] == []
    help_text = next(r for r in results if r.command[0] == "mkmedia").output
    assert "recover" in help_text

    # the storage+network policy carries the disk, RAID, crypt and NIC drivers
    modules = {p.name.split(".ko")[0] for p in (tree / "usr/lib/modules").rglob("*.ko*")}
    assert {"nvme", "virtio_blk", "ahci", "raid1", "dm-crypt", "e1000", "xfs"} <= modules
    artifacts = manifest_of(out)
    for kind in ("kernel", "initrd", "report"):
        path = Path(str(artifacts[kind]["path"]))
        assert artifacts[kind]["sha256"] == sha256_file(path)
    report = Path(str(artifacts["report"]["path"])).read_text()
    assert "kernel modules" in report and "largest" in report


def test_two_builds_give_identical_initrds(tmp_path: Path) -> None:
    first = build_media(tmp_path / "one", output="RAMDISK")
    time.sleep(1.5)  # a different wall-clock time; SOURCE_DATE_EPOCH must hide it
    second = build_media(tmp_path / "two", output="RAMDISK")
    a, b = manifest_of(first)["initrd"], manifest_of(second)["initrd"]
    assert a["sha256"] == b["sha256"]
    assert a["size"] == b["size"]
