"""The recreate script, run for real on loop devices: GPT (ext4, xfs, vfat ESP, swap,
btrfs with nested subvolumes and a default subvolume) and MBR with logical partitions are
captured (all of it: this kernel has no vfat to mount the ESP), wiped, recreated by
`mkmedia layoutonly --force` and captured again: the layouts must be equal. An edited copy
that fails midway stops naming the component, and the next run continues from there.
(MD, LUKS and LVM need device-mapper: tests/vm/test_recreate_guest.py.)

Needs root and loop devices (the build machine has both).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from rescue_runtime.cli import main
from rescue_runtime.layout.capture import capture
from rescue_runtime.layout.compare import compare
from rescue_runtime.layout.model import Layout
from rescue_runtime.layout.store import save
from rescue_runtime.run import run
from tests.integration.test_layout_loop import LoopDisk, loop_disk
from tests.loopfs import root_test_marks

pytestmark = root_test_marks("loop devices need root", ["losetup"], "losetup missing")

MiB = 1024 * 1024
GPT = (
    "label: gpt\nlabel-id: 5E1F0A52-6E2B-4C8D-9A71-0B5E4D3C2A10\n"
    "start=2048, size=64MiB, type=linux, name=root, uuid=21111111-2222-4333-8444-555555555501\n"
    "size=300MiB, type=linux, name=data, uuid=21111111-2222-4333-8444-555555555502\n"
    "size=33MiB, type=uefi, name=esp, uuid=21111111-2222-4333-8444-555555555503\n"
    "size=16MiB, type=swap, uuid=21111111-2222-4333-8444-555555555504, attrs=GUID:63\n"
    "size=128MiB, type=linux, name=btr, uuid=21111111-2222-4333-8444-555555555505\n"
)
# Named lines: without them sfdisk makes the partitions after the extended one primary.
MBR = (
    "label: dos\nlabel-id: 0x5eedbeef\n"
    "{img}1 : start=2048, size=16MiB, type=83, bootable\n"
    "{img}2 : size=48MiB, type=5\n"
    "{img}5 : size=16MiB, type=83\n"
    "{img}6 : size=16MiB, type=83\n"
)
EXT4_UUID = "6a1f0c3e-9d2b-4e8a-b5c7-1d2e3f4a5b61"
XFS_UUID = "7b2a1d4f-0e3c-4f9b-a6d8-2e3f4a5b6c71"
SWAP_UUID = "8c3b2e5a-1f4d-4a0c-b7e9-3f4a5b6c7d81"
BTRFS_UUID = "9d4c3f6b-2a5e-4b1d-88fa-4a5b6c7d8e91"
EXT2_UUID = "0e5d4a7c-3b6f-4c2e-99ab-5b6c7d8e9fa1"


def build_stacks(gpt: LoopDisk, mbr: LoopDisk, root: Path) -> None:
    p = [gpt.part(n) for n in range(1, 6)]
    run(["mkfs.ext4", "-q", "-F", "-L", "lroot", "-U", EXT4_UUID, "-I", "256", p[0]])
    run(["mkfs.xfs", "-q", "-f", "-L", "ldata", "-m", f"uuid={XFS_UUID},reflink=1", p[1]])
    run(["mkfs.vfat", "-F", "32", "-i", "5EED1234", "-n", "ESP", p[2]])
    run(["mkswap", "-L", "lswap", "-U", SWAP_UUID, p[3]])
    run(["mkfs.btrfs", "-q", "-f", "-U", BTRFS_UUID, "-L", "lbtr", p[4]])
    run(["mkfs.ext2", "-q", "-F", "-U", EXT2_UUID, "-L", "llog", mbr.part(5)])
    gpt.mount(p[0], root)
    top = root / "top"
    gpt.mount(p[4], top)
    for sub in ("@", "@home", "@/nested", "@home/deep"):
        run(["btrfs", "-q", "subvolume", "create", top / sub])
    run(["btrfs", "-q", "subvolume", "set-default", top / "@"])
    gpt.mount(p[1], root / "data")
    (root / "home").mkdir()
    run(["mount", "-o", "subvol=@home", p[4], root / "home"])
    gpt.mounts.append(root / "home")
    mbr.mount(mbr.part(5), root / "var" / "log")
    write_fstab(root)


def write_fstab(root: Path) -> None:
    # What a restore brings back: fstab lives in the root file system being recreated.
    (root / "etc").mkdir(exist_ok=True)
    (root / "etc" / "fstab").write_text(f"UUID={SWAP_UUID} none swap sw 0 0\n")


def unmount_all(disks: list[LoopDisk], root: Path) -> None:
    run(["umount", "-R", root], check=False)
    for d in disks:
        d.mounts.clear()


def wipe(disk: LoopDisk) -> None:
    """Signatures off every partition and the disk, the first and last MiB zeroed."""
    for node in sorted(Path("/dev").glob(Path(disk.path).name + "p*")):
        run(["wipefs", "-a", "-q", node], check=False)
    run(["wipefs", "-a", "-q", disk.path])
    size = int(run(["blockdev", "--getsize64", disk.path]).stdout)
    with open(disk.path, "r+b") as f:
        f.write(bytes(MiB))
        f.seek(size - MiB)
        f.write(bytes(MiB))
    disk.rescan()
    assert not list(Path("/dev").glob(Path(disk.path).name + "p*")), "partitions left"


def layoutonly(layout_dir: Path, target: Path, script_dir: Path, *extra: str) -> int:
    return main(
        [
            "layoutonly",
            "--force",
            "--dir",
            str(layout_dir),
            "--target",
            str(target),
            "--script-dir",
            str(script_dir),
            *extra,
        ]
    )


def recaptured(target: Path, disks: list[LoopDisk]) -> Layout:
    write_fstab(target)
    return capture(str(target), devices=[d.path for d in disks], everything=True)


def test_recreate_on_loop_devices(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    root, target = tmp_path / "root", tmp_path / "target"
    layout_dir, script_dir = tmp_path / "layout", tmp_path / "recreate"
    with (
        loop_disk(tmp_path / "gpt.img", 600 * MiB, GPT) as gpt,
        loop_disk(tmp_path / "mbr.img", 100 * MiB, MBR.format(img=tmp_path / "mbr.img")) as mbr,
    ):
        disks = [gpt, mbr]
        build_stacks(gpt, mbr, root)
        saved = capture(str(root), devices=[gpt.path, mbr.path], everything=True)
        assert {f.fstype for f in saved.filesystems} == {
            "ext4",
            "xfs",
            "vfat",
            "swap",
            "btrfs",
            "ext2",
        }
        save(saved, layout_dir)
        unmount_all(disks, root)
        for d in disks:
            wipe(d)

        capfd.readouterr()
        assert layoutonly(layout_dir, target, script_dir) == 0, capfd.readouterr()
        out = capfd.readouterr().out
        script = Path(re.search(r"recreate script: (\S+)", out).group(1))  # type: ignore[union-attr]
        assert script.parent == script_dir
        try:
            assert compare(saved, recaptured(target, disks)) == []
        finally:
            run(["umount", "-R", target], check=False)

        # Blank disks again; a copy of the script that fails after the first disk.
        for d in disks:
            wipe(d)
        for state in script_dir.glob("state-*"):
            for f in state.iterdir():
                f.unlink()
        broken = tmp_path / "broken.sh"
        text = script.read_text()
        # the script writes the disks in name order, and loop device numbers are whatever
        # was free (another test may hold some): fail before whichever disk comes second
        markers = {d.path: text.find(f"# --- disk {d.path}:") for d in (gpt, mbr)}
        assert -1 not in markers.values(), markers
        first, second = sorted(markers, key=markers.__getitem__)
        marker = f"# --- disk {second}:"
        broken.write_text(text.replace(marker, f"false\n{marker}"))
        env = {**os.environ, "TARGET": str(target)}
        failed = subprocess.run(["bash", broken], capture_output=True, text=True, env=env)
        assert failed.returncode != 0
        assert f"recreate: FAILED in disk:{first} " in failed.stdout + failed.stderr
        capfd.readouterr()
        try:
            assert layoutonly(layout_dir, target, script_dir) == 0, capfd.readouterr()
            log = capfd.readouterr().out
            assert f"recreate: disk:{first} was finished before, skipped" in log, log
            assert f"recreate: disk:{second}\n" in log, log
            assert compare(saved, recaptured(target, disks)) == []
        finally:
            run(["umount", "-R", target], check=False)
