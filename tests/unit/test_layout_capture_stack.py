"""capture() on a whole RAID1 + LUKS2 + LVM (thin pool) machine, replaying tool outputs.

Device-mapper and MD do not work on the build machine, so the tools' reports are replayed
from tests/data/layout (see its README: which were recorded, which written); the QEMU guest
tests run capture on the real stack. Also covers the graph, selection, JSON round trip,
rendering and compare on that layout.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from rescue_runtime.errors import CommandError, ConfigError, MissingError
from rescue_runtime.layout.capture import capture
from rescue_runtime.layout.compare import compare
from rescue_runtime.layout.graph import build_graph, mount_order
from rescue_runtime.layout.model import Layout
from rescue_runtime.layout.probe import DevicesChanged, SystemProbe, vanished
from rescue_runtime.layout.render import render
from rescue_runtime.layout.select import autoexcluded
from rescue_runtime.layout.serial import from_json, to_json
from rescue_runtime.layout.store import load, save

DATA = Path(__file__).resolve().parents[1] / "data" / "layout"
STACK = DATA / "stack"


class ReplayProbe:
    """Answers capture's tool calls from recorded files; a tool not listed is "missing"."""

    def __init__(
        self,
        missing: tuple[str, ...] = (),
        unreadable: tuple[str, ...] = (),
        no_table: tuple[str, ...] = (),
    ) -> None:
        self.missing = missing
        self.unreadable = unreadable
        self.no_table = no_table  # sfdisk exits 1: "does not contain a recognized partition table"
        self.calls: list[list[str]] = []
        lvm_opts = "--reportformat json --units b --nosuffix -o"
        self.answers = {
            "lsblk -J -b -O": STACK / "lsblk.json",
            "findmnt -J -l -b": STACK / "findmnt.json",
            "sfdisk -J /dev/vda": STACK / "sfdisk-vda.json",
            "sfdisk -J /dev/vdb": STACK / "sfdisk-vdb.json",
            "sfdisk -J /dev/vdc": STACK / "sfdisk-vdc.json",
            "mdadm --detail --export /dev/md0": DATA / "mdadm/written-4.2-raid1-export.txt",
            "mdadm --detail /dev/md0": DATA / "mdadm/written-4.2-raid1-detail.txt",
            "cryptsetup luksDump /dev/vdc1": DATA / "cryptsetup/host-luks2.txt",
            "cryptsetup luksDump --dump-json-metadata /dev/vdc1": DATA
            / "cryptsetup/host-luks2-json.json",
            f"lvm pvs {lvm_opts}": DATA / "lvm/written-pvs.json",
            f"lvm vgs {lvm_opts}": DATA / "lvm/written-vgs.json",
            f"lvm lvs -a {lvm_opts}": DATA / "lvm/written-lvs-thin-raid.json",
            "tune2fs -l /dev/mapper/vg0-root": DATA / "tune2fs/host-ext4.txt",
            "tune2fs -l /dev/vdd": DATA / "tune2fs/host-ext3.txt",
            "xfs_info /srv": DATA / "xfs_info/host-xfsprogs-6.1.txt",
        }
        self.files = {
            "/etc/fstab": STACK / "fstab",
            "/etc/crypttab": STACK / "crypttab",
            "/proc/swaps": STACK / "proc-swaps",
        }

    def tool(self, argv: list[str], *, what: str, ok_codes: tuple[int, ...] = (0,)) -> str | None:
        self.calls.append(argv)
        if argv[0] in self.missing:
            return None
        if argv[0] == "blkid":
            return ""  # lsblk's (udev's) values stand
        if argv[0] == "sfdisk" and argv[-1] in self.no_table:
            assert 1 in ok_codes, "sfdisk's exit 1 (no table) must not be an error"
            return ""
        if argv[:2] == ["mdadm", "--version"]:
            return "mdadm - v4.2 - 2021-12-30\n"
        line = " ".join(argv)
        for key, path in self.answers.items():
            if line == key or line.startswith(key + " "):
                return path.read_text()
        raise AssertionError(f"capture ran an unexpected command: {line}")

    def read(self, path: str) -> str | None:
        found = self.files.get(path)
        return found.read_text() if found else None

    def cannot_open(self, device: str) -> str | None:
        return "Operation not permitted" if device in self.unreadable else None

    def links(self, directory: str) -> dict[str, str]:
        if directory == "/dev/disk/by-id":
            return {"/dev/disk/by-id/virtio-disk-a": "/dev/vda"}
        return {}


@pytest.fixture
def layout() -> Layout:
    return capture("/", exclude_disks=["/dev/vdd"], probe=ReplayProbe())


def test_stack_components(layout: Layout) -> None:
    assert [d.path for d in layout.disks] == ["/dev/vda", "/dev/vdb", "/dev/vdc"]
    assert layout.disks[0].by_id == ["/dev/disk/by-id/virtio-disk-a"]
    vda = layout.disks[0]
    assert [p.flags for p in vda.partitions] == [["bios_grub"], ["raid"]]
    assert vda.partitions[1].start == 2048 * 512 + 1024 * 1024
    (md,) = layout.mds
    assert md.level == "raid1" and md.members == ["/dev/vda2", "/dev/vdb2"]
    assert md.spares == ["/dev/vdc2"] and md.bitmap == "internal"
    (luks,) = layout.luks
    assert luks.name == "cryptpv" and luks.device == "/dev/vdc1" and luks.version == 2
    assert luks.sector_size == 4096 and luks.options == ["luks", "discard"]
    assert luks.key_file is None and luks.header_backup is None
    assert [pv.device for pv in layout.pvs] == ["/dev/md0", "/dev/mapper/cryptpv"]
    (vg,) = layout.vgs
    assert vg.pvs == ["/dev/md0", "/dev/mapper/cryptpv"] and vg.extent_size == 4 * 1024**2
    # Every LV of a kept VG: thin2 and the raid1 LV are not mounted, and marked so.
    lvs = {lv.name: lv for lv in layout.lvs}
    assert sorted(lvs) == ["mirrored", "pool", "root", "swap-1", "thin1", "thin2"]
    assert [n for n, lv in sorted(lvs.items()) if lv.unmounted] == ["mirrored", "thin2"]
    mounts = {m.mountpoint: m for m in layout.mounts}
    assert set(mounts) == {"/", "/srv", "swap"}
    assert mounts["swap"].device == "/dev/mapper/vg0-swap--1" and mounts["swap"].mounted
    assert mounts["/srv"].fstab_spec == "/dev/vg0/thin1"
    fs = {f.device: f for f in layout.filesystems}
    assert fs["/dev/mapper/vg0-root"].ext is not None
    assert fs["/dev/mapper/vg0-thin1"].xfs is not None
    assert "/dev/vdd" not in fs
    assert any(e.id == "disk:/dev/vdd" and "backup" in e.reason for e in layout.excluded)


def test_stack_graph_order(layout: Layout) -> None:
    graph = build_graph(layout)
    assert graph.unresolved == {}
    order = graph.dependencies_of_mount("/srv")
    for before, after in [
        ("disk:/dev/vda", "part:/dev/vda2"),
        ("part:/dev/vda2", "md:/dev/md0"),
        ("part:/dev/vdb2", "md:/dev/md0"),
        ("part:/dev/vdc1", "luks:/dev/mapper/cryptpv"),
        ("md:/dev/md0", "pv:/dev/md0"),
        ("luks:/dev/mapper/cryptpv", "pv:/dev/mapper/cryptpv"),
        ("pv:/dev/md0", "vg:vg0"),
        ("vg:vg0", "lv:vg0/pool"),
        ("lv:vg0/pool", "lv:vg0/thin1"),
        ("lv:vg0/thin1", "fs:/dev/mapper/vg0-thin1"),
        ("mount:/", "mount:/srv"),
    ]:
        assert order.index(before) < order.index(after), (before, after)
    assert "lv:vg0/swap-1" not in order and order[-1] == "mount:/srv"
    assert set(graph.children("vg:vg0")) == {
        f"lv:vg0/{n}" for n in ("root", "swap-1", "pool", "thin1", "thin2", "mirrored")
    }
    assert graph.children("lv:vg0/pool") == ["lv:vg0/thin1", "lv:vg0/thin2"]
    assert "mount:/srv" in graph.descendants("part:/dev/vdc2")
    assert [m.mountpoint for m in mount_order(layout)] == ["/", "/srv"]


def test_stack_json_round_trip_and_render(layout: Layout, tmp_path: Path) -> None:
    assert from_json(to_json(layout)) == layout
    save(layout, tmp_path)
    assert load(tmp_path) == layout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["layout.json", "layout.txt"]
    text = render(layout)
    assert "raid /dev/md0 raid1" in text and "luks2 /dev/mapper/cryptpv on /dev/vdc1" in text
    assert "lvm lv vg0/thin1 thin" in text and "excluded disk:/dev/vdd" in text


def test_excludes_by_mountpoint_and_vg(layout: Layout) -> None:
    small = capture("/", exclude=["/srv"], exclude_disks=["/dev/vdd"], probe=ReplayProbe())
    # The mount goes and its file system with it; the LV stays in its VG, unmounted.
    excluded = {e.id: e.reason for e in small.excluded}
    assert excluded["mount:/srv"] == "excluded by '/srv'"
    assert "mount:/srv" in excluded["fs:/dev/mapper/vg0-thin1"]
    assert small.filesystem("/dev/mapper/vg0-thin1") is None
    thin1 = small.lv("vg0/thin1")
    assert thin1 is not None and thin1.unmounted
    no_lv = capture("/", exclude=["vg0/thin*"], exclude_disks=["/dev/vdd"], probe=ReplayProbe())
    assert sorted(lv.name for lv in no_lv.lvs) == ["mirrored", "pool", "root", "swap-1"]
    assert [m.mountpoint for m in no_lv.mounts] == ["/", "swap"]
    none = capture("/", exclude=["vg0"], exclude_disks=["/dev/vdd"], probe=ReplayProbe())
    assert none.lvs == [] and none.mounts == [] and none.disks == []


def test_missing_tools_are_notes_not_crashes() -> None:
    layout = capture("/", exclude_disks=["/dev/vdd"], probe=ReplayProbe(missing=("lvm", "mdadm")))
    assert any("lvm is not installed" in n for n in layout.notes)
    assert any("mdadm is not installed" in n for n in layout.notes)
    assert layout.lvs == [] and layout.mds == []
    with pytest.raises(MissingError, match="lsblk"):
        capture("/", probe=ReplayProbe(missing=("lsblk",)))


def test_unreadable_device_is_a_note() -> None:
    layout = capture("/", exclude_disks=["/dev/vdd"], probe=ReplayProbe(unreadable=("/dev/vdc",)))
    vdc = next(d for d in layout.disks if d.path == "/dev/vdc")
    # The kernel's view stands in: the stack above stays connected.
    assert [(p.path, p.size) for p in vdc.partitions] == [
        ("/dev/vdc1", 5 * 1024**3),
        ("/dev/vdc2", 5 * 1024**3 - 2 * 1024**2),
    ]
    assert vdc.partitions[1].flags == ["raid"] and vdc.table == "gpt"  # lsblk PTTYPE
    assert build_graph(layout).unresolved == {}
    assert any(n.startswith("cannot open /dev/vdc (Operation not permitted)") for n in layout.notes)
    assert len(next(d for d in layout.disks if d.path == "/dev/vda").partitions) == 2


def test_table_that_sfdisk_cannot_find_is_a_note() -> None:
    """udev's database can name a table that is no longer there (a loop device attached to
    another image): the kernel's partitions stand in, and the layout says so."""
    probe = ReplayProbe(no_table=("/dev/vdc",))
    layout = capture("/", exclude_disks=["/dev/vdd"], probe=probe)
    vdc = next(d for d in layout.disks if d.path == "/dev/vdc")
    assert [p.path for p in vdc.partitions] == ["/dev/vdc1", "/dev/vdc2"]
    assert any(n.startswith("sfdisk finds no partition table on /dev/vdc") for n in layout.notes)


def test_compare_ignores_usage_and_reports_what_matters(layout: Layout) -> None:
    other = copy.deepcopy(layout)
    other.captured_at = "2030-01-01T00:00:00+00:00"
    other.notes.append("something transient")
    other.mounts[0].options.append("noatime")
    other.boot.boot_order = ["0002"]
    assert compare(layout, other) == []
    lv = next(lv for lv in other.lvs if lv.name == "root")
    lv.size += 1024**3
    other.filesystems[0].uuid = "00000000-0000-0000-0000-000000000000"
    other.disks[2].partitions.pop()
    diffs = [str(d) for d in compare(layout, other)]
    assert any(d.startswith("changed: lv:vg0/root size: 4294967296 (4.0 GiB) ->") for d in diffs)
    assert any(d.startswith(f"changed: fs:{layout.filesystems[0].device} uuid") for d in diffs)
    assert "removed: part:/dev/vdc2" in diffs


def test_newer_format_version_is_refused(layout: Layout) -> None:
    text = to_json(layout).replace('"format_version": 1', '"format_version": 99')
    with pytest.raises(ConfigError, match="format_version 99"):
        from_json(text)
    with pytest.raises(ConfigError, match="not valid JSON"):
        from_json("{")


def test_autoexclude_is_below_the_paths_only() -> None:
    """As ReaR's AUTOEXCLUDE_PATH: a separate /tmp file system stays, /tmp/job does not."""
    assert autoexcluded("/tmp", ["/tmp"]) is None
    assert autoexcluded("/tmp/job", ["/media", "/tmp/"]) == "/tmp/"
    assert autoexcluded("/tmpfs/x", ["/tmp"]) is None
    assert autoexcluded("/", ["/"]) is None and autoexcluded("/home", ["/"]) == "/"
    whole = capture("/", autoexclude=["/"], exclude_disks=["/dev/vdd"], probe=ReplayProbe())
    assert [m.mountpoint for m in whole.mounts] == ["/", "swap"]
    assert {e.id: e.reason for e in whole.excluded}["mount:/srv"] == (
        "mounted below / (AUTOEXCLUDE_PATH)"
    )


class VanishingProbe(ReplayProbe):
    """A loop device goes away under the first `times` passes (another program detached it
    while capture read it): the tool on it fails as the device set changes."""

    def __init__(self, times: int) -> None:
        super().__init__()
        self.times = times
        self.passes = 0

    def tool(self, argv: list[str], *, what: str, ok_codes: tuple[int, ...] = (0,)) -> str | None:
        if argv[0] == "lsblk":
            self.passes += 1
        if argv[0] == "tune2fs" and self.passes <= self.times:
            raise DevicesChanged(f"/dev/loop7 went away while the layout was read ({what})")
        return super().tool(argv, what=what, ok_codes=ok_codes)


def test_a_device_that_goes_away_mid_capture_makes_capture_read_again(layout: Layout) -> None:
    probe = VanishingProbe(times=2)
    again = capture("/", exclude_disks=["/dev/vdd"], probe=probe)
    assert probe.passes == 3
    again.captured_at = layout.captured_at  # the passes differ only in when they ran
    assert to_json(again) == to_json(layout)
    with pytest.raises(MissingError, match=r"kept changing .*\(3 tries\).*loop7"):
        capture("/", exclude_disks=["/dev/vdd"], probe=VanishingProbe(times=3))


def test_the_system_probe_tells_a_vanished_device_from_a_failing_tool(tmp_path: Path) -> None:
    gone = "/dev/mkmedia-test-no-such-device"
    with pytest.raises(DevicesChanged, match=gone):
        SystemProbe().tool(["tune2fs", "-l", gone], what="reading it")
    with pytest.raises(CommandError) as failed:  # a real failure on a device that is there
        SystemProbe().tool(["tune2fs", "-l", "/dev/null"], what="reading /dev/null")
    assert not isinstance(failed.value, DevicesChanged)
    assert vanished(["-l", "/dev/null", str(tmp_path)]) == []
