"""Capture's file systems: type, label, UUID and the parameters each kind's tool reports
(ext, xfs, btrfs subvolumes)."""

from __future__ import annotations

import re

from rescue_runtime.layout.capture_base import CONTAINER_TYPES, EXT_TYPES, CaptureBase, Devices
from rescue_runtime.layout.model import BtrfsParams, Filesystem
from rescue_runtime.layout.parse import btrfs, ext, findmnt, xfs


class FilesystemLayers(CaptureBase):
    """File systems."""

    def filesystems(self, devs: Devices, live: list[findmnt.LiveMount]) -> None:
        # Where neither udev nor blkid could tell (an unreadable device), the live mount's
        # own view of the file system stands in.
        for m in live:
            dev = devs.resolve(m.source)
            if dev is not None and not dev.fstype and m.fstype:
                dev.fstype, dev.uuid, dev.label = m.fstype, m.uuid, m.label
        candidates = [d for d in devs.all if d.fstype and d.fstype not in CONTAINER_TYPES]
        seen_btrfs: dict[str, Filesystem] = {}
        for dev in candidates:
            fstype = dev.fstype or ""
            fs = Filesystem(
                device=dev.path, fstype=fstype, uuid=dev.uuid, label=dev.label, size=dev.size
            )
            mountpoint = next((m.target for m in live if devs.resolve(m.source) is dev), None)
            if fstype in EXT_TYPES:
                self.ext(fs)
            elif fstype == "xfs":
                self.xfs(fs, mountpoint)
            elif fstype == "btrfs":
                if fs.uuid in seen_btrfs:  # a further device of a multi-device btrfs
                    continue
                if fs.uuid:
                    seen_btrfs[fs.uuid] = fs
                self.btrfs(fs, mountpoint, live, devs)
            elif fstype == "vfat" and dev.fsver:
                digits = re.sub(r"\D", "", dev.fsver)
                fs.fat_size = int(digits) if digits else None
            self.layout.filesystems.append(fs)

    def ext(self, fs: Filesystem) -> None:
        if self.unreadable(fs.device):
            return
        out = self.probe.tool(["tune2fs", "-l", fs.device], what=f"reading {fs.device}")
        if out is None:
            out = self.tool(
                ["dumpe2fs", "-h", fs.device],
                what=f"reading {fs.device}",
                part=f"the ext parameters of {fs.device}",
            )
        if out:
            fs.ext, uuid, label = ext.parse(out)
            fs.uuid, fs.label = uuid or fs.uuid, label if label is not None else fs.label

    def xfs(self, fs: Filesystem, mountpoint: str | None) -> None:
        # xfs_info before xfsprogs 5.x takes only a mount point.
        if mountpoint is None and self.unreadable(fs.device):
            return
        # xfsprogs 4.x and later make xfs_info a script around xfs_spaceman (mounted) or
        # xfs_db: where the helper is missing (a trimmed rescue system) the script exits 127
        # with nothing on stdout, and xfs_db's own `info` prints the same report.
        out = self.probe.tool(
            ["xfs_info", mountpoint or fs.device], what=f"reading {fs.device}", ok_codes=(0, 127)
        )
        if not out and not self.unreadable(fs.device):
            out = self.tool(
                ["xfs_db", "-r", "-c", "info", fs.device],
                what=f"reading {fs.device}",
                part=f"the XFS parameters of {fs.device}",
            )
        if out:
            fs.xfs = xfs.parse(out)

    def btrfs(
        self, fs: Filesystem, mountpoint: str | None, live: list[findmnt.LiveMount], devs: Devices
    ) -> None:
        # Every device carrying this btrfs's UUID; `btrfs filesystem show` confirms when mounted.
        members = [d.path for d in devs.all if d.fstype == "btrfs" and d.uuid == fs.uuid]
        fs.btrfs = BtrfsParams(devices=members if fs.uuid and members else [fs.device])
        if mountpoint is None:
            self.note(f"btrfs on {fs.device} is not mounted: subvolumes not captured.")
            return
        show = self.tool(
            ["btrfs", "filesystem", "show", "--raw", mountpoint],
            what=f"reading btrfs on {fs.device}",
            part=f"btrfs on {fs.device}",
        )
        if show is None:
            return
        shown = btrfs.parse_show(show)
        if shown and shown[0].devices:
            fs.btrfs.devices = shown[0].devices
        profiles = btrfs.parse_df(
            self.probe.tool(
                ["btrfs", "filesystem", "df", "-b", mountpoint], what="reading btrfs profiles"
            )
            or ""
        )
        fs.btrfs.data_profile = profiles.get("data") or profiles.get("data+metadata")
        fs.btrfs.metadata_profile = profiles.get("metadata") or profiles.get("data+metadata")
        fs.btrfs.system_profile = profiles.get("system")
        fs.btrfs.subvolumes = btrfs.parse_subvolume_list(
            self.probe.tool(
                # -a: paths from the top level, whichever subvolume is mounted here.
                ["btrfs", "subvolume", "list", "-a", "-p", "-u", mountpoint],
                what="listing btrfs subvolumes",
            )
            or ""
        )
        default = self.probe.tool(
            ["btrfs", "subvolume", "get-default", mountpoint],
            what="reading the default btrfs subvolume",
        )
        if default:
            fs.btrfs.default_subvolume, fs.btrfs.default_subvolume_path = btrfs.parse_get_default(
                default
            )
        for sub in fs.btrfs.subvolumes:
            for m in live:
                if m.uuid == fs.uuid and m.fsroot.strip("/") == sub.path:
                    sub.mount_options = [
                        o for o in m.options if not o.startswith(("subvol=", "subvolid="))
                    ]
