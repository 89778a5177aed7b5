"""Disk mapping: each saved disk lands on exactly one present disk by clear rules, the
medium never; every device path of the layout follows the mapping."""

from __future__ import annotations

from pathlib import Path

import pytest

from rescue_runtime.errors import ConfigError
from rescue_runtime.layout.model import Disk, Layout
from rescue_runtime.layout.serial import to_json
from rescue_runtime.recover.mapping import (
    apply_mapping,
    partition_path,
    propose,
    read_mapping_file,
)
from rescue_runtime.recover.recreate import generate
from tests.unit.blockdevices import present

GiB = 1 << 30


def disk(path: str, size: int = 10 * GiB, serial: str | None = None) -> Disk:
    return Disk(path=path, size=size, serial=serial)


def test_same_identity_wins_over_same_name() -> None:
    saved = [disk("/dev/vda", serial="A"), disk("/dev/vdb", serial="B")]
    disks = [present("/dev/vda", 10 * GiB, "B"), present("/dev/vdb", 10 * GiB, "A")]
    result = propose(saved, disks)
    assert result.pairs == {"/dev/vda": "/dev/vdb", "/dev/vdb": "/dev/vda"}
    assert result.complete and not result.identity


def test_same_name_then_one_disk_of_the_same_size() -> None:
    saved = [disk("/dev/vda"), disk("/dev/sdb", 20 * GiB)]
    disks = [present("/dev/vda", 10 * GiB), present("/dev/nvme0n1", 20 * GiB)]
    result = propose(saved, disks)
    assert result.pairs == {"/dev/vda": "/dev/vda", "/dev/sdb": "/dev/nvme0n1"}
    assert "same size" in result.reasons["/dev/sdb"]


def test_two_larger_candidates_are_ambiguous_and_the_medium_is_never_one() -> None:
    saved = [disk("/dev/sda")]
    disks = [
        present("/dev/vdb", 12 * GiB),
        present("/dev/vdc", 14 * GiB),
        present("/dev/sdz", 11 * GiB),
    ]
    result = propose(saved, disks, protected={"/dev/sdz"})
    assert result.ambiguous == {"/dev/sda": ["/dev/vdb", "/dev/vdc"]}
    assert not result.complete
    only = propose(saved, disks[1:], protected={"/dev/sdz"})
    assert only.pairs == {"/dev/sda": "/dev/vdc"}


def test_no_disk_large_enough_is_unplaced() -> None:
    result = propose([disk("/dev/sda", 50 * GiB)], [present("/dev/vdb", 10 * GiB)])
    assert result.unplaced == ["/dev/sda"]


def test_the_mapping_file_is_read_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "disks"
    path.write_text("# saved new\n/dev/sda /dev/vdb  # the new disk\n\n")
    assert read_mapping_file(path) == {"/dev/sda": "/dev/vdb"}
    path.write_text("/dev/sda /dev/vdb\n/dev/sdb /dev/vdb\n")
    with pytest.raises(ConfigError, match="line 2: /dev/vdb is mapped twice"):
        read_mapping_file(path)
    path.write_text("/dev/sda\n")
    with pytest.raises(ConfigError, match="line 1"):
        read_mapping_file(path)
    assert read_mapping_file(tmp_path / "none") == {}


def test_a_mapping_file_naming_the_medium_is_refused() -> None:
    with pytest.raises(ConfigError, match="holds the rescue medium"):
        propose(
            [disk("/dev/sda")],
            [present("/dev/sr0", 10 * GiB)],
            protected={"/dev/sr0"},
            given={"/dev/sda": "/dev/sr0"},
        )


def test_partition_names_follow_the_kernel() -> None:
    assert partition_path("/dev/sda", 2) == "/dev/sda2"
    assert partition_path("/dev/nvme0n1", 2) == "/dev/nvme0n1p2"
    assert partition_path("/dev/mmcblk0", 1) == "/dev/mmcblk0p1"


def test_every_device_path_follows_the_mapping(stack_layout: Layout) -> None:
    first = stack_layout.disks[0].path
    mapped, table = apply_mapping(stack_layout, {first: "/dev/nvme0n1"})
    text = to_json(mapped)
    assert f'"{first}' not in text.replace(f'"{first}"', "")  # no partition keeps its name
    assert table[f"{first}1"] == "/dev/nvme0n1p1"
    assert mapped.disks[0].serial == stack_layout.disks[0].serial  # identity of the old disk
    plan = generate(mapped)
    assert "/dev/nvme0n1p1" in plan.script and f"{first}1 " not in plan.script
    md = mapped.mds[0]
    assert all(not m.startswith(first) for m in md.members)
