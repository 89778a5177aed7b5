"""Capture's middle layers: multipath maps, MD RAID arrays, LUKS containers and LVM."""

from __future__ import annotations

import dataclasses
import os

from rescue_runtime.atomic import atomic_path
from rescue_runtime.errors import CommandError
from rescue_runtime.layout.capture_base import CaptureBase, Devices
from rescue_runtime.layout.model import LuksDevice, MdArray
from rescue_runtime.layout.parse import cryptsetup, lvm, mdadm, multipath, tables


class StackLayers(CaptureBase):
    """Multipath, MD RAID, LUKS and LVM."""

    def multipaths(self, devs: Devices) -> None:
        if not any(d.type == "mpath" for d in devs.all):
            return
        out = self.tool(["multipath", "-ll"], what="listing multipath maps", part="multipath maps")
        if out is not None:
            self.layout.multipaths = multipath.parse(out)

    def mds(self, devs: Devices) -> None:
        arrays = [d for d in devs.all if d.type.startswith("raid") or d.type == "linear"]
        if not arrays:
            return
        if self.probe.tool(["mdadm", "--version"], what="checking mdadm") is None:
            self.note("mdadm is not installed: MD RAID arrays not captured.")
            return
        for dev in arrays:
            export = (
                self.probe.tool(
                    ["mdadm", "--detail", "--export", dev.path], what=f"reading MD array {dev.path}"
                )
                or ""
            )
            detail = (
                self.probe.tool(
                    ["mdadm", "--detail", dev.path], what=f"reading MD array {dev.path}"
                )
                or ""
            )
            array = (
                mdadm.parse_export(export, dev.path)
                if "MD_LEVEL" in export
                else MdArray(path=dev.path, level=dev.type)
            )
            array = mdadm.parse_detail(detail, array)
            # mdadm names members by kernel name; map them to lsblk's paths.
            array.members = [self._path(devs, m) for m in array.members]
            array.spares = [self._path(devs, m) for m in array.spares]
            if not array.members:
                array.members = list(dev.parents)
            self.layout.mds.append(array)
        conf = tables.parse_mdadm_conf(self.etc("mdadm/mdadm.conf") or self.etc("mdadm.conf"))
        if not conf:
            self.note("no ARRAY lines in mdadm.conf: arrays are named from mdadm --detail.")

    def luks(self, devs: Devices) -> None:
        mappings = [d for d in devs.all if d.type == "crypt"]
        if not mappings:
            return
        crypttab = {e.name: e for e in tables.parse_crypttab(self.etc("crypttab"))}
        for dev in mappings:
            if not dev.parents:
                continue
            backing = dev.parents[0]
            dump = self.tool(
                ["cryptsetup", "luksDump", backing],
                what=f"reading the LUKS header of {backing}",
                part=f"the LUKS header of {backing}",
            )
            if dump is None:
                continue
            header = cryptsetup.parse_dump(dump)
            if header.version == 2:
                # --dump-json-metadata exists from cryptsetup 2.4 on; older ones refuse it.
                try:
                    meta = self.probe.tool(
                        ["cryptsetup", "luksDump", "--dump-json-metadata", backing],
                        what=f"reading the LUKS2 metadata of {backing}",
                    )
                except CommandError:  # older cryptsetup: the text dump suffices
                    meta = None
                if meta:
                    header = cryptsetup.merge_json_metadata(header, meta)
            entry = crypttab.get(dev.name)
            # Every field of the header is a field of the device under the same name.
            luks = LuksDevice(
                path=dev.path,
                name=dev.name,
                device=backing,
                key_file=entry.key_file if entry else None,
                options=entry.options if entry else [],
                **dataclasses.asdict(header),
            )
            if self.luks_header_dir:
                luks.header_backup = self.backup_header(backing, dev.name)
            self.layout.luks.append(luks)

    def backup_header(self, device: str, name: str) -> str:
        os.makedirs(self.luks_header_dir or ".", mode=0o700, exist_ok=True)
        file_name = f"luks-header-{name}.img"
        target = os.path.join(self.luks_header_dir or ".", file_name)
        # A header backup opens the volume with every passphrase it had: owner-only.
        with atomic_path(target, mode=0o600) as tmp:
            self.probe.tool(
                ["cryptsetup", "luksHeaderBackup", device, "--header-backup-file", str(tmp)],
                what=f"backing up the LUKS header of {device}",
            )
        return file_name

    def lvm(self, devs: Devices) -> None:
        if not any(d.type == "lvm" or d.fstype == "LVM2_member" for d in devs.all):
            return
        common = ["--reportformat", "json", "--units", "b", "--nosuffix"]
        pvs = self.tool(
            ["lvm", "pvs", *common, "-o", lvm.PVS_FIELDS], what="listing LVM PVs", part="LVM"
        )
        if pvs is None:
            return
        vgs = (
            self.probe.tool(["lvm", "vgs", *common, "-o", lvm.VGS_FIELDS], what="listing LVM VGs")
            or ""
        )
        lvs = (
            self.probe.tool(
                ["lvm", "lvs", "-a", *common, "-o", lvm.LVS_FIELDS], what="listing LVM LVs"
            )
            or ""
        )
        self.layout.pvs = lvm.parse_pvs(pvs)
        for pv in self.layout.pvs:
            pv.device = self._path(devs, pv.device)
        self.layout.vgs = lvm.parse_vgs(vgs)
        for vg in self.layout.vgs:
            vg.pvs = [pv.device for pv in self.layout.pvs if pv.vg == vg.name]
        self.layout.lvs = lvm.parse_lvs(lvs)
        for lv in self.layout.lvs:
            dev = devs.resolve(lv.path)
            if dev:
                lv.path = dev.path
            lv.devices = [self._path(devs, d) for d in lv.devices]
