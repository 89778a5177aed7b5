"""Capture real partition tables and file systems on loop devices and check the result
against what the test created (fixed UUIDs, labels, sizes, mkfs parameters); save, load,
and checklayout before and after a change.

Needs root and loop devices (the build machine has both; device-mapper is tested in QEMU).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import rescue_runtime.cli
from rescue_runtime import rescueconf
from rescue_runtime.layout import cli
from rescue_runtime.layout.capture import capture
from rescue_runtime.layout.graph import build_graph
from rescue_runtime.layout.model import Layout
from rescue_runtime.layout.render import render
from rescue_runtime.layout.select import DEFAULT_AUTOEXCLUDE
from rescue_runtime.layout.store import load, save
from rescue_runtime.run import run, which
from tests.unit.test_cli import mkmedia

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="loop devices need root"),
    pytest.mark.skipif(which("losetup") is None, reason="losetup missing"),
]

MiB = 1024 * 1024
DISK_GUID = "3F1D0A52-6E2B-4C8D-9A71-0B5E4D3C2A10"
PART_UUIDS = [
    "11111111-2222-4333-8444-555555555501",
    "11111111-2222-4333-8444-555555555502",
    "11111111-2222-4333-8444-555555555503",
]
EXT4_UUID = "6a1f0c3e-9d2b-4e8a-b5c7-1d2e3f4a5b6c"
XFS_UUID = "7b2a1d4f-0e3c-4f9b-a6d8-2e3f4a5b6c7d"
SWAP_UUID = "8c3b2e5a-1f4d-4a0c-b7e9-3f4a5b6c7d8e"


class LoopDisk:
    """An image file on a loop device with its partitions; detached (and unmounted) at the
    end whatever happens."""

    def __init__(self, image: Path, size: int, table: str) -> None:
        run(["truncate", "-s", str(size), image])
        run(["sfdisk", "-q", image], input=table)
        self.path = run(["losetup", "-f", "--show", "-P", image]).stdout.strip()
        self.mounts: list[Path] = []
        self.rescan()

    def rescan(self) -> None:
        # The kernel does not always scan partitions on attach here; partx adds them (and
        # their nodes appear asynchronously).
        run(["partx", "-u", self.path], check=False)
        run(["partx", "-a", self.path], check=False)

    def part(self, number: int) -> str:
        node = f"{self.path}p{number}"
        deadline = time.monotonic() + 10
        while not os.path.exists(node) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert os.path.exists(node), f"{node} did not appear"
        return node

    def mount(self, device: str, target: Path) -> None:
        target.mkdir(parents=True, exist_ok=True)
        run(["mount", device, target])
        self.mounts.append(target)

    def mount_root(self, root: Path, mounts: dict[str, str], fstab: str) -> Path:
        """A system's root under `root`: each device mounted at its mount point below it, in
        order ("" is root itself), and `fstab` written as its etc/fstab; returns root."""
        for mountpoint, device in mounts.items():
            self.mount(device, root / mountpoint)
        (root / "etc").mkdir()
        (root / "etc" / "fstab").write_text(fstab)
        return root

    def close(self) -> None:
        for target in reversed(self.mounts):
            run(["umount", target], check=False)
        run(["losetup", "-d", self.path], check=False)


@contextlib.contextmanager
def loop_disk(image: Path, size: int, table: str) -> Iterator[LoopDisk]:
    disk = LoopDisk(image, size, table)
    try:
        yield disk
    finally:
        disk.close()


def checklayout(
    layout_dir: Path, root: Path, disk: LoopDisk, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    capsys.readouterr()
    status = cli.main(
        ["checklayout", "--dir", str(layout_dir), "--root", str(root), "--device", disk.path]
    )
    return status, capsys.readouterr().out


def test_gpt_ext4_xfs_swap(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table = (
        f"label: gpt\nlabel-id: {DISK_GUID}\n"
        f"start=2048, size=100MiB, type=linux, name=root, uuid={PART_UUIDS[0]}\n"
        f"size=320MiB, type=linux, name=data, uuid={PART_UUIDS[1]}\n"
        f"size=32MiB, type=swap, name=swap, uuid={PART_UUIDS[2]}\n"
    )
    with loop_disk(tmp_path / "gpt.img", 600 * MiB, table) as disk:
        p1, p2, p3 = disk.part(1), disk.part(2), disk.part(3)
        run(["mkfs.ext4", "-q", "-F", "-L", "lroot", "-U", EXT4_UUID, "-b", "4096",
             "-I", "256", "-m", "1", p1])  # fmt: skip
        run(["mkfs.xfs", "-q", "-f", "-L", "ldata", "-m", f"uuid={XFS_UUID},reflink=1", p2])
        run(["mkswap", "-L", "lswap", "-U", SWAP_UUID, p3])
        root = disk.mount_root(
            tmp_path / "root",
            {"": p1, "data": p2},
            f"UUID={EXT4_UUID} / ext4 errors=remount-ro 0 1\n"
            f"UUID={XFS_UUID} /data xfs defaults 0 2\n"
            f"UUID={SWAP_UUID} none swap sw 0 0\n",
        )

        layout = capture(str(root), devices=[disk.path])

        (d,) = layout.disks
        assert d.path == disk.path and d.size == 600 * MiB
        assert d.table == "gpt" and d.table_id == DISK_GUID
        assert [(p.number, p.start, p.size, p.name, p.uuid) for p in d.partitions] == [
            (1, 2048 * 512, 100 * MiB, "root", PART_UUIDS[0]),
            (2, 2048 * 512 + 100 * MiB, 320 * MiB, "data", PART_UUIDS[1]),
            (3, 2048 * 512 + 420 * MiB, 32 * MiB, "swap", PART_UUIDS[2]),
        ]
        assert d.partitions[2].flags == ["swap"]
        fs = {f.device: f for f in layout.filesystems}
        assert set(fs) == {p1, p2, p3}
        ext4, xfs, swap = fs[p1], fs[p2], fs[p3]
        assert (ext4.fstype, ext4.uuid, ext4.label) == ("ext4", EXT4_UUID, "lroot")
        assert ext4.ext is not None and ext4.ext.block_size == 4096
        assert ext4.ext.inode_size == 256 and ext4.ext.reserved_percent == pytest.approx(1, 0.01)
        assert (xfs.fstype, xfs.uuid, xfs.label) == ("xfs", XFS_UUID, "ldata")
        assert xfs.xfs is not None and xfs.xfs.features["reflink"] == 1
        assert xfs.xfs.features["crc"] == 1 and xfs.xfs.block_size == 4096
        assert (swap.fstype, swap.uuid, swap.label) == ("swap", SWAP_UUID, "lswap")
        mounts = {m.mountpoint: m for m in layout.mounts}
        assert set(mounts) == {"/", "/data", "swap"}
        assert mounts["/"].device == p1 and mounts["/"].fstab_spec == f"UUID={EXT4_UUID}"
        assert mounts["/data"].device == p2 and mounts["/data"].mounted
        assert mounts["swap"].device == p3 and not mounts["swap"].mounted

        graph = build_graph(layout)
        order = graph.dependencies_of_mount("/data")
        assert order[0] == f"disk:{disk.path}" and order[-1] == "mount:/data"
        assert order.index("mount:/") < order.index("mount:/data")
        assert order.index(f"part:{p2}") < order.index(f"fs:{p2}")
        assert f"part:{p3}" not in order
        assert set(graph.children(f"disk:{disk.path}")) == {f"part:{p}" for p in (p1, p2, p3)}

        layout_dir = tmp_path / "layout"
        save(layout, layout_dir)
        assert load(layout_dir) == layout
        assert "lroot" in (layout_dir / "layout.txt").read_text()
        assert checklayout(layout_dir, root, disk, capsys)[0] == 0
        # Bare, as cron runs it: the saved layout's own selection options are reused.
        assert cli.main(["checklayout", "--dir", str(layout_dir), "--quiet"]) == 0
        assert capsys.readouterr().out == ""

        # A new partition is a difference that matters.
        run(["sfdisk", "-q", "--force", "--no-reread", "--append", disk.path],
            input="size=20MiB, type=linux\n")  # fmt: skip
        disk.rescan()
        disk.part(4)
        status, out = checklayout(layout_dir, root, disk, capsys)
        assert status == 1
        assert f"added: part:{disk.path}p4" in out


def test_mbr_extended_logical(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table = (
        "label: dos\nlabel-id: 0x1a2b3c4d\n"
        "size=60MiB, type=83, bootable\n"
        "type=5\n"
        "size=50MiB, type=83\n"
        "size=40MiB, type=c\n"
    )
    with loop_disk(tmp_path / "mbr.img", 200 * MiB, table) as disk:
        p1, p5, p6 = disk.part(1), disk.part(5), disk.part(6)
        run(["mkfs.ext2", "-q", "-F", "-L", "mbrroot", p1])
        run(["mkfs.ext3", "-q", "-F", "-L", "mbrhome", p5])
        run(["mkfs.vfat", "-F", "16", "-n", "MBRFAT", "-i", "1234ABCD", p6])
        # vfat cannot be mounted on the build machine (no module): fstab names it instead,
        # which also covers a file system that is configured but not mounted.
        fstab = "LABEL=MBRFAT /home/fat vfat noauto 0 0\n"
        root = disk.mount_root(tmp_path / "root", {"": p1, "home": p5}, fstab)

        layout = capture(str(root), devices=[disk.path])

        (d,) = layout.disks
        assert d.table == "dos" and d.table_id == "0x1a2b3c4d"
        parts = {p.number: p for p in d.partitions}
        assert set(parts) == {1, 2, 5, 6}
        assert [parts[n].kind for n in (1, 2, 5, 6)] == [
            "primary",
            "extended",
            "logical",
            "logical",
        ]
        assert parts[1].flags == ["boot"] and parts[2].flags == ["extended"]
        assert parts[5].size == 50 * MiB and parts[6].size == 40 * MiB
        ext_end = parts[2].start + parts[2].size
        assert all(parts[2].start < parts[n].start < ext_end for n in (5, 6))
        fs = {f.device: f for f in layout.filesystems}
        assert (fs[p1].fstype, fs[p1].label) == ("ext2", "mbrroot")
        assert (fs[p5].fstype, fs[p5].label) == ("ext3", "mbrhome")
        assert (fs[p6].fstype, fs[p6].uuid, fs[p6].label) == ("vfat", "1234-ABCD", "MBRFAT")
        assert fs[p6].fat_size == 16
        fat = next(m for m in layout.mounts if m.mountpoint == "/home/fat")
        assert fat.device == p6 and not fat.mounted and fat.fstab_spec == "LABEL=MBRFAT"
        graph = build_graph(layout)
        assert f"part:{parts[2].path}" in graph.depends_on(f"part:{p5}")
        order = graph.dependencies_of_mount("/home/fat")
        assert order.index("mount:/") < order.index("mount:/home") < order.index("mount:/home/fat")

        layout_dir = tmp_path / "layout"
        save(layout, layout_dir)
        assert checklayout(layout_dir, root, disk, capsys)[0] == 0
        # Grow the last logical partition: a resize is a difference too.
        run(["sfdisk", "-q", "--force", "--no-reread", "-N", "6", disk.path],
            input=",45MiB\n")  # fmt: skip
        disk.rescan()
        status, out = checklayout(layout_dir, root, disk, capsys)
        assert status == 1
        assert f"changed: part:{p6} size: {40 * MiB}" in out


def test_unchanged_layout_equal_after_reload(tmp_path: Path) -> None:
    """A layout saved and loaded compares equal to a fresh capture of the same disks."""
    from rescue_runtime.layout.compare import compare

    table = "label: gpt\nsize=40MiB, type=linux\n"
    with loop_disk(tmp_path / "one.img", 64 * MiB, table) as disk:
        run(["mkfs.ext4", "-q", "-F", disk.part(1)])
        root = tmp_path / "root"
        disk.mount(disk.part(1), root)
        first: Layout = capture(str(root), devices=[disk.path])
        save(first, tmp_path / "layout")
        assert compare(load(tmp_path / "layout"), capture(str(root), devices=[disk.path])) == []


def test_btrfs_subvolumes_and_default(tmp_path: Path) -> None:
    """btrfs mounts on the build machine: subvolumes, default, per-subvolume options."""
    image = tmp_path / "btrfs.img"
    run(["truncate", "-s", str(300 * MiB), image])
    loop = run(["losetup", "-f", "--show", image]).stdout.strip()
    top, root = tmp_path / "top", tmp_path / "root"
    mounted: list[Path] = []
    try:
        run(["mkfs.btrfs", "-q", "-L", "pool", "-d", "single", "-m", "dup", loop])
        top.mkdir()
        run(["mount", loop, top])
        mounted.append(top)
        for sub in ("@", "@home", "@/nested"):
            run(["btrfs", "-q", "subvolume", "create", top / sub])
        listing = run(["btrfs", "subvolume", "list", top]).stdout
        at_id = next(int(line.split()[1]) for line in listing.splitlines() if line.endswith(" @"))
        run(["btrfs", "subvolume", "set-default", str(at_id), top])
        run(["umount", top])
        mounted.remove(top)
        root.mkdir()
        run(["mount", loop, root])  # the default subvolume
        mounted.append(root)
        (root / "home").mkdir()
        run(["mount", "-o", "subvol=@home,noatime", loop, root / "home"])
        mounted.append(root / "home")

        layout = capture(str(root), devices=[loop])

        (fs,) = layout.filesystems
        assert fs.fstype == "btrfs" and fs.label == "pool" and fs.btrfs is not None
        b = fs.btrfs
        assert (b.data_profile, b.metadata_profile) == ("single", "dup")
        assert b.devices == [loop]
        assert sorted(s.path for s in b.subvolumes) == ["@", "@/nested", "@home"]
        assert b.default_subvolume == at_id and b.default_subvolume_path == "@"
        home_sub = next(s for s in b.subvolumes if s.path == "@home")
        assert "noatime" in home_sub.mount_options
        mounts = {m.mountpoint: m for m in layout.mounts}
        assert (mounts["/"].fsroot, mounts["/home"].fsroot) == ("/@", "/@home")
        order = build_graph(layout).dependencies_of_mount("/home")
        assert order == [f"disk:{loop}", f"fs:{loop}", "mount:/", "mount:/home"]
    finally:
        for target in reversed(mounted):
            run(["umount", target], check=False)
        run(["losetup", "-d", loop], check=False)


def test_unmounted_file_system_kept_and_an_added_one_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A partition nothing mounts, and the file system on it, are part of the layout (so
    recovery does not silently drop them), marked unmounted; a new one is a difference."""
    table = "label: gpt\nsize=40MiB, type=linux\nsize=40MiB, type=linux\nsize=20MiB\n"
    with loop_disk(tmp_path / "spare.img", 160 * MiB, table) as disk:
        p1, p2, p3 = disk.part(1), disk.part(2), disk.part(3)
        run(["mkfs.ext4", "-q", "-F", p1])
        run(["mkfs.ext4", "-q", "-F", "-L", "spare", "-U", EXT4_UUID, p2])
        # A LUKS container nobody opened: capture cannot see inside, and says so.
        key = tmp_path / "key"
        key.write_text("test-passphrase")
        run(["cryptsetup", "luksFormat", "-q", "--type", "luks2", "--pbkdf", "pbkdf2",
             "--pbkdf-force-iterations", "1000", "--key-file", key, p3])  # fmt: skip
        root = tmp_path / "root"
        disk.mount(p1, root)

        layout = capture(str(root), devices=[disk.path])

        parts = {p.path: p for p in layout.partitions()}
        assert [parts[p].unmounted for p in (p1, p2, p3)] == [False, True, True]
        spare, used = layout.filesystem(p2), layout.filesystem(p1)
        assert spare is not None and used is not None
        assert (spare.fstype, spare.uuid, spare.label) == ("ext4", EXT4_UUID, "spare")
        assert spare.ext is not None and spare.ext.block_size  # its parameters were read
        assert spare.unmounted and not used.unmounted
        assert layout.filesystem(p3) is None and layout.luks == []
        assert f"{p3} holds a LUKS container that is not open" in " ".join(layout.notes)
        lines = render(layout).splitlines()
        line = next(x for x in lines if x.startswith(f"fs {p2} "))
        assert f"uuid={EXT4_UUID} label=spare" in line and line.endswith("(unmounted)")
        assert any(x.startswith("# (unmounted): no mount or swap uses it") for x in lines)

        layout_dir = tmp_path / "layout"
        save(layout, layout_dir)
        assert checklayout(layout_dir, root, disk, capsys)[0] == 0
        # A new partition with a file system and no mount: both are differences.
        run(["sfdisk", "-q", "--force", "--no-reread", "--append", disk.path],
            input="size=20MiB, type=linux\n")  # fmt: skip
        disk.rescan()
        run(["mkfs.ext4", "-q", "-F", disk.part(4)])
        status, out = checklayout(layout_dir, root, disk, capsys)
        assert status == 1, out
        assert f"added: part:{disk.path}p4" in out and f"added: fs:{disk.path}p4" in out, out


def test_autoexclude_leaves_out_a_disk_mounted_below_it(tmp_path: Path) -> None:
    """A job disk mounted below /mnt (AUTOEXCLUDE_PATH) is left out, disk and all, and listed
    with the reason; a file system mounted on /tmp itself stays (as ReaR's)."""
    table = "label: gpt\nsize=30MiB, type=linux\nsize=30MiB, type=linux\n"
    with (
        loop_disk(tmp_path / "sys.img", 80 * MiB, table) as system,
        loop_disk(tmp_path / "job.img", 40 * MiB, "label: gpt\nsize=30MiB\n") as job,
    ):
        for device in (system.part(1), system.part(2), job.part(1)):
            run(["mkfs.ext4", "-q", "-F", device])
        root = tmp_path / "root"
        system.mount(system.part(1), root)
        system.mount(system.part(2), root / "tmp")
        job.mount(job.part(1), root / "mnt" / "job")
        devices = [system.path, job.path]

        layout = capture(str(root), devices=devices, autoexclude=DEFAULT_AUTOEXCLUDE)

        assert [d.path for d in layout.disks] == [system.path]
        assert sorted(m.mountpoint for m in layout.mounts) == ["/", "/tmp"]
        excluded = {e.id: e.reason for e in layout.excluded}
        assert excluded["mount:/mnt/job"] == "mounted below /mnt (AUTOEXCLUDE_PATH)"
        assert "mount:/mnt/job" in excluded[f"fs:{job.part(1)}"]
        assert excluded[f"disk:{job.path}"] == "nothing kept remains on it"
        text = render(layout)
        assert f"excluded disk:{job.path}: nothing kept remains on it" in text
        assert "excluded mount:/mnt/job: mounted below /mnt (AUTOEXCLUDE_PATH)" in text
        # Without AUTOEXCLUDE_PATH the job disk is captured like a system disk.
        everything = capture(str(root), devices=devices)
        assert [d.path for d in everything.disks] == devices


def test_layout_commands_follow_the_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The host's `mkmedia layout save` / `checklayout` take -c and --set (LAYOUT_DIR,
    AUTOEXCLUDE_PATH, EXCLUDE_RECREATE) as `build` does; the rescue system's take its
    rescue.json; a missing --root is an error, not every disk "removed"."""
    conf, layout_dir = tmp_path / "etc", tmp_path / "saved"
    conf.mkdir()
    (conf / "site.yaml").write_text(
        f"LAYOUT_DIR: {layout_dir}\nAUTOEXCLUDE_PATH:\n  replace: [/jobs]\n"
    )
    table = "label: gpt\nsize=30MiB, type=linux\nsize=30MiB, type=linux\n"
    with loop_disk(tmp_path / "d.img", 80 * MiB, table) as disk:
        p1, p2 = disk.part(1), disk.part(2)
        for device in (p1, p2):
            run(["mkfs.ext4", "-q", "-F", device])
        root = tmp_path / "root"
        disk.mount(p1, root)
        disk.mount(p2, root / "jobs" / "x")
        selection = ["--root", str(root), "--device", disk.path]

        saved = mkmedia("layout", "save", "-c", str(conf), *selection, tmp=tmp_path)
        assert saved.returncode == 0, saved.stderr
        layout = load(layout_dir)
        assert layout.options.autoexclude == ["/jobs"]
        assert layout.mount("/jobs/x") is None and layout.filesystem(p2) is None
        assert layout.partitions()[1].unmounted  # the partition stays with its disk
        # Bare, as cron runs it: the configured directory, the saved root and devices.
        check = mkmedia("checklayout", "-c", str(conf), tmp=tmp_path)
        assert check.returncode == 0, check.stdout + check.stderr
        assert f"layout unchanged (compared with {layout_dir})" in check.stdout
        # The configuration changed since the save: the next build's layout would differ.
        check = mkmedia(
            "checklayout", "-c", str(conf), "--set", "AUTOEXCLUDE_PATH=/media", tmp=tmp_path
        )
        assert check.returncode == 1, check.stdout + check.stderr
        assert "added: mount:/jobs/x" in check.stdout and f"added: fs:{p2}" in check.stdout
        excluded = mkmedia(
            "layout", "show", "--current", "-c", str(conf), *selection,
            "--set", "EXCLUDE_RECREATE=/", tmp=tmp_path,
        )  # fmt: skip
        assert excluded.returncode == 0, excluded.stderr
        assert "excluded mount:/: excluded by '/'" in excluded.stdout
        assert f"excluded fs:{p1}: only mount:/ used it" in excluded.stdout

        missing = mkmedia("checklayout", "-c", str(conf), "--root", "/nonexistent", tmp=tmp_path)
        assert missing.returncode == 2, missing.stdout + missing.stderr
        assert "The system root /nonexistent does not exist" in missing.stderr
        assert "removed" not in missing.stdout and "Traceback" not in missing.stderr
        assert len(missing.stderr.strip().splitlines()) == 1, missing.stderr

        # The rescue system's command: its rescue.json has the build's settings.
        rescue_json = tmp_path / "rescue.json"
        settings = {"AUTOEXCLUDE_PATH": ["/elsewhere"], "EXCLUDE_RECREATE": ["/jobs/x"]}
        rescue_json.write_text(rescueconf.RescueConfig(settings=settings).to_json())
        read = rescueconf.load  # /etc/mkmedia/rescue.json in the rescue system
        monkeypatch.setattr(rescueconf, "load", lambda: read(rescue_json))
        rescue_dir = tmp_path / "rescue-layout"
        argv = ["layout", "save", "--dir", str(rescue_dir), *selection]
        assert rescue_runtime.cli.main(argv) == 0
        options = load(rescue_dir).options
        assert (options.autoexclude, options.exclude) == (["/elsewhere"], ["/jobs/x"])
