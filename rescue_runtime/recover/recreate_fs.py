"""Recreate layers 5-6: file systems with their UUIDs, labels and parameters; mounts.

ext2/3/4 get the exact feature list (`-O none,...`), block and inode size, inode count and
reserved percentage; xfs its UUID, block/inode/sector size, AG count and the meta-data
features (crc, finobt, reflink, ...); btrfs its UUID, label, data/metadata profiles, every
subvolume in id order (so ids and nesting come back) and the default subvolume; vfat its
volume id and FAT size; swap its UUID and label. Mounts go under $TARGET, parents first.
"""

from __future__ import annotations

import posixpath
import shlex

from rescue_runtime.layout.model import Filesystem, Layout, Mount
from rescue_runtime.recover.recreate_block import Block

# Features tune2fs reports that describe the file system's state, not how it was made.
EXT_STATE_FEATURES = {"needs_recovery", "orphan_present", "snapshot_bitmap"}
# xfs_info features and the mkfs.xfs option section they belong to.
XFS_OPTION_SECTIONS = {
    "crc": "-m",
    "finobt": "-m",
    "rmapbt": "-m",
    "reflink": "-m",
    "bigtime": "-m",
    "inobtcount": "-m",
    "sparse": "-i",
    "nrext64": "-i",
    "ftype": "-n",
}
# mkfs.xfs refuses file systems under 300 MB unless it believes it runs under fstests;
# recreating a small original is legitimate, so the script says so the fstests way.
XFS_SMALL = 300 * 1000 * 1000
XFS_SMALL_ENV = "TEST_DIR=/tmp TEST_DEV=/dev/null QA_CHECK_FS=1"


def fs_blocks(fs: Filesystem, warnings: list[str]) -> list[Block]:
    block = Block(fs.id, f"{fs.fstype} on {fs.device}" + (f" ({fs.label})" if fs.label else ""))
    maker = {
        "ext2": ext_commands,
        "ext3": ext_commands,
        "ext4": ext_commands,
        "xfs": xfs_commands,
        "btrfs": btrfs_commands,
        "vfat": vfat_commands,
        "swap": swap_commands,
    }.get(fs.fstype)
    if maker is None:
        warnings.append(f"{fs.id}: no way to create {fs.fstype}; left empty")
        block.comments.append(f"{fs.fstype}: not created (unknown to mkmedia); edit here")
        return [block]
    maker(fs, block)
    blocks = [block]
    if fs.btrfs and (fs.btrfs.subvolumes or fs.btrfs.default_subvolume != 5):
        blocks.append(btrfs_subvolumes_block(fs))
    return blocks


def ext_commands(fs: Filesystem, block: Block) -> None:
    argv = ["mke2fs", "-F", "-q", "-t", fs.fstype]
    if fs.uuid:
        argv += ["-U", fs.uuid]
    if fs.label:
        argv += ["-L", fs.label]
    ext = fs.ext
    if ext is not None:
        if ext.features:
            keep = [f for f in ext.features if f not in EXT_STATE_FEATURES]
            argv += ["-O", ",".join(["none", *keep])]
        if ext.block_size:
            argv += ["-b", str(ext.block_size)]
        if ext.inode_size:
            argv += ["-I", str(ext.inode_size)]
        if ext.inode_count:
            argv += ["-N", str(ext.inode_count)]
        if ext.reserved_percent is not None:
            argv += ["-m", f"{ext.reserved_percent:g}"]
    argv.append(fs.device)
    if ext is not None and ext.block_count and ext.block_size:
        argv.append(str(ext.block_count))  # the original size, even on a larger device
    block.run(*argv)


def xfs_commands(fs: Filesystem, block: Block) -> None:
    argv = ["mkfs.xfs", "-f", "-q"]
    sections: dict[str, list[str]] = {"-m": [], "-i": [], "-n": [], "-l": [], "-d": []}
    if fs.uuid:
        sections["-m"].append(f"uuid={fs.uuid}")
    if fs.label:
        argv += ["-L", fs.label]
    xfs = fs.xfs
    if xfs is not None:
        for name, value in sorted(xfs.features.items()):
            section = XFS_OPTION_SECTIONS.get(name)
            if section:
                sections[section].append(f"{name}={value}")
        if xfs.block_size:
            argv += ["-b", f"size={xfs.block_size}"]
        if xfs.inode_size:
            sections["-i"].append(f"size={xfs.inode_size}")
        if xfs.sector_size:
            argv += ["-s", f"size={xfs.sector_size}"]
        if xfs.agcount:
            sections["-d"].append(f"agcount={xfs.agcount}")
    for option, values in sections.items():
        if values:
            argv += [option, ",".join(values)]
    argv.append(fs.device)
    small = fs.size is not None and fs.size < XFS_SMALL
    block.run(*argv, env=XFS_SMALL_ENV if small else "")


def btrfs_commands(fs: Filesystem, block: Block) -> None:
    argv = ["mkfs.btrfs", "-f", "-q"]
    if fs.uuid:
        argv += ["-U", fs.uuid]
    if fs.label:
        argv += ["-L", fs.label]
    devices = [fs.device]
    if fs.btrfs is not None:
        if fs.btrfs.data_profile:
            argv += ["-d", fs.btrfs.data_profile.lower()]
        if fs.btrfs.metadata_profile:
            argv += ["-m", fs.btrfs.metadata_profile.lower()]
        devices = fs.btrfs.devices or devices
    block.run(*argv, *devices)


def btrfs_subvolumes_block(fs: Filesystem) -> Block:
    """Subvolumes in id order, each only when missing (this block may run twice)."""
    assert fs.btrfs is not None
    block = Block(f"btrfs-subvolumes:{fs.device}", f"btrfs subvolumes of {fs.device}")
    top = f'"$WORK_DIR/btrfs-{fs.uuid or fs.device.replace("/", "_")}"'
    block.run("mkdir", "-p", top)
    block.raw(
        f"findmnt -rn --mountpoint {top} >/dev/null || mount -o subvolid=5 {fs.device} {top}",
        "findmnt",
        "mount",
    )
    for sub in sorted(fs.btrfs.subvolumes, key=lambda s: s.id):
        path = f'{top[:-1]}/{sub.path}"'
        parent = posixpath.dirname(sub.path)
        if parent:
            # @/srv/nested sits in a plain directory of @ (its owner and mode come back with
            # the restore): the directory is made first
            block.run("mkdir", "-p", f'{top[:-1]}/{parent}"')
        block.raw(f"[ -d {path} ] || btrfs subvolume create {path}", "btrfs")
    default = fs.btrfs.default_subvolume_path
    if fs.btrfs.default_subvolume != 5 and default:
        block.run("btrfs", "subvolume", "set-default", f'{top[:-1]}/{default}"')
    block.run("umount", top)
    return block


def vfat_commands(fs: Filesystem, block: Block) -> None:
    argv = ["mkfs.vfat"]
    if fs.fat_size:
        argv += ["-F", str(fs.fat_size)]
    if fs.uuid:
        argv += ["-i", fs.uuid.replace("-", "")]  # "ABCD-1234" is volume id ABCD1234
    if fs.label:
        argv += ["-n", fs.label]
    block.run(*argv, fs.device)


def swap_commands(fs: Filesystem, block: Block) -> None:
    argv = ["mkswap", "--force"]
    if fs.uuid:
        argv += ["--uuid", fs.uuid]
    if fs.label:
        argv += ["--label", fs.label]
    block.run(*argv, fs.device)


def mount_block(mount: Mount, layout: Layout, warnings: list[str]) -> Block | None:
    """Mount one file system under $TARGET; checked by probing, not by state (a reboot
    unmounts it)."""
    fs = layout.filesystem(mount.device)
    if fs is None:
        warnings.append(f"{mount.id}: {mount.device} has no saved file system; not mounted")
        return None
    under = mount.mountpoint if mount.mountpoint != "/" else ""
    where = '"$TARGET"' + shlex.quote(under)
    block = Block(mount.id, f"mount {mount.device} at $TARGET{under}")
    block.probe_mount = under
    argv = ["mount", "-t", mount.fstype]
    if mount.fstype == "btrfs":  # always named: without it the default subvolume mounts
        argv += ["-o", f"subvol={mount.fsroot or '/'}"]
    elif mount.fsroot not in ("", "/"):
        warnings.append(f"{mount.id}: a bind mount of {mount.fsroot}; not mounted")
        return None
    block.raw(f"mkdir -p {where}", "mkdir")
    block.raw(" ".join(shlex.quote(a) for a in [*argv, mount.device]) + f" {where}", "mount")
    return block
