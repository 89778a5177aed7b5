"""Components left out of a recovery (EXCLUDE_RECREATE, a disk with no place, the missing
half of RAID1 mirrors) go with everything built on them; RAID1 arrays run degraded."""

from __future__ import annotations

import pytest

from rescue_runtime.errors import ConfigError
from rescue_runtime.layout.model import Layout
from rescue_runtime.recover.exclude import leave_out, matching_ids, redundant_disk
from rescue_runtime.recover.recreate import generate
from rescue_runtime.recover.resize import TooSmall, mirror_sizes, resize_layout
from rescue_runtime.recover.shrink import MiB, usable_end
from tests.unit.test_recover_resize import GiB


def ids(layout: Layout) -> set[str]:
    found = {d.id for d in layout.disks} | {p.id for p in layout.partitions()}
    for items in (layout.mds, layout.luks, layout.pvs, layout.vgs, layout.lvs):
        found |= {i.id for i in items}  # type: ignore[attr-defined]
    return found | {f.id for f in layout.filesystems} | {m.id for m in layout.mounts}


def test_the_missing_mirror_disk_degrades_the_array_and_keeps_what_is_on_it(
    guest_layout: Layout,
) -> None:
    assert redundant_disk(guest_layout, "/dev/vdc")  # RAID1 member, ESP copy, empty logical
    assert not redundant_disk(guest_layout, "/dev/vdb")  # /srv/mbr/l6 and the ESP mounted
    assert not redundant_disk(guest_layout, "/dev/vda")
    result = leave_out(guest_layout, {"disk:/dev/vdc": "no disk for it"})
    layout = result.layout
    (md,) = layout.mds
    assert (
        md.members == ["/dev/vdb5"]
        and md.missing == [1]
        and md.slots()
        == [
            "/dev/vdb5",
            "missing",
        ]
    )
    assert result.degraded == ["/dev/md0: slot 1 (/dev/vdc5) missing"]
    assert layout.lv("vgsec/home") is not None and layout.mount("/srv/sec/home") is not None
    assert result.skipped_mounts == []
    assert not any(i.endswith(("/dev/vdc", "/dev/vdc1", "/dev/vdc5")) for i in ids(layout))
    assert any(e.id == "disk:/dev/vdc" for e in layout.excluded)
    script = generate(layout).script
    assert "/dev/vdb5 missing" in script and "--raid-devices=2" in script
    assert "/dev/vdc" not in script
    assert guest_layout.mds[0].members == ["/dev/vdb5", "/dev/vdc5"]  # the saved one unchanged


def test_excluded_components_go_with_everything_built_on_them(guest_layout: Layout) -> None:
    reasons = {
        i: f"EXCLUDE_RECREATE {p!r}"
        for i, p in matching_ids(guest_layout, ["vggpt", "/srv/btr"], "EXCLUDE_RECREATE").items()
    }
    assert set(reasons) == {"vg:vggpt", "mount:/srv/btr"}
    result = leave_out(guest_layout, reasons)
    layout = result.layout
    assert result.skipped_mounts == ["/srv/btr", "/srv/gpt/data", "/srv/gpt/root"]
    assert not any(lv.vg == "vggpt" for lv in layout.lvs)
    assert layout.mount("swap") is None and layout.filesystem("/dev/mapper/vggpt-root") is None
    assert layout.mount("/srv/gpt/boot") is not None  # on vda1, not on the VG
    assert layout.mount("/srv/btr-home") is not None  # the btrfs itself stays
    assert result.removed["lv:vggpt/root"] == "built on vg:vggpt, which is left out"


def test_a_pattern_that_names_nothing_is_refused(guest_layout: Layout) -> None:
    with pytest.raises(ConfigError, match=r"EXCLUDE_RECREATE names '/srv/nothere'"):
        matching_ids(guest_layout, ["/srv/nothere"], "EXCLUDE_RECREATE")


def test_raid1_disks_of_other_sizes_get_equal_members(stack_layout: Layout) -> None:
    sizes = {"/dev/vda": 12 * GiB, "/dev/vdb": 11 * GiB, "/dev/vdc": 13 * GiB}
    planned = mirror_sizes(stack_layout, sizes)
    assert planned == {"/dev/vda": 11 * GiB, "/dev/vdb": 11 * GiB, "/dev/vdc": 13 * GiB}
    grown, _ = resize_layout(stack_layout, sizes)
    members = [p for p in grown.partitions() if p.path in ("/dev/vda2", "/dev/vdb2")]
    assert members[0].size == members[1].size > 10 * GiB - 4 * 2**20
    (md,) = grown.mds
    assert md.size is None  # mdadm sizes it by the members


def test_a_degraded_raid1_shrinks_onto_one_smaller_disk(stack_layout: Layout) -> None:
    # the RAID1 + LUKS + LVM layout's data lives partly on a thin pool (kept) and on vdc:
    # leave the second mirror out and shrink vda, the remaining member's disk
    layout = leave_out(stack_layout, {"disk:/dev/vdb": "gone"}).layout
    (md,) = layout.mds
    assert md.missing == [1]
    with pytest.raises(TooSmall) as caught:
        resize_layout(layout, {"/dev/vda": 8 * GiB, "/dev/vdc": 10 * GiB})
    disk = layout.disks[0]
    offered = (usable_end(disk, 8 * GiB) - disk.partitions[0].start) // MiB
    assert f"/dev/vda offers {offered} MiB" in str(caught.value)
    assert "PV of a VG on several PVs: kept" in str(caught.value)
