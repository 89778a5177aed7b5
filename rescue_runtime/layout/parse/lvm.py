"""LVM reports: `pvs`, `vgs`, `lvs` with `--reportformat json --units b --nosuffix -o ...`
(lvm2 2.02.158 and later). Values arrive as strings."""

from __future__ import annotations

import re
from typing import Any

from rescue_runtime.layout.model import LogicalVolume, PhysicalVolume, VolumeGroup
from rescue_runtime.layout.parse.common import ParseError, load_json, nonempty, to_int

PVS_FIELDS = "pv_name,pv_uuid,vg_name,pv_size,pv_mda_count,pe_start"
VGS_FIELDS = "vg_name,vg_uuid,vg_extent_size,vg_size,vg_tags"
LVS_FIELDS = (
    "lv_name,vg_name,lv_uuid,lv_size,segtype,stripes,stripe_size,region_size,lv_path,"
    "lv_dm_path,pool_lv,origin,chunk_size,lv_metadata_size,lv_tags,devices,lv_active,"
    "lv_role,mirror_log"
)


def _rows(tool: str, text: str, key: str) -> list[dict[str, Any]]:
    data = load_json(tool, text)
    try:
        rows: list[dict[str, Any]] = []
        for report in data["report"]:
            rows.extend(report.get(key, []))
        return rows
    except (KeyError, TypeError) as exc:
        raise ParseError(tool, f"no report[].{key} list") from exc


def _tags(value: Any) -> list[str]:
    return [t for t in str(value or "").split(",") if t]


def parse_pvs(text: str) -> list[PhysicalVolume]:
    return [
        PhysicalVolume(
            device=str(r["pv_name"]),
            uuid=str(r["pv_uuid"]),
            vg=nonempty(r.get("vg_name")),
            size=to_int(r.get("pv_size")),
            metadata_copies=to_int(r.get("pv_mda_count")),
            pe_start=to_int(r.get("pe_start")),
        )
        for r in _rows("pvs", text, "pv")
    ]


def parse_vgs(text: str) -> list[VolumeGroup]:
    return [
        VolumeGroup(
            name=str(r["vg_name"]),
            uuid=str(r["vg_uuid"]),
            extent_size=to_int(r.get("vg_extent_size")) or 0,
            size=to_int(r.get("vg_size")),
            tags=_tags(r.get("vg_tags")),
        )
        for r in _rows("vgs", text, "vg")
    ]


def _devices(value: Any) -> list[str]:
    """ "/dev/sda2(0),/dev/sdb2(0)" -> ["/dev/sda2", "/dev/sdb2"]."""
    return [re.sub(r"\(\d+\)$", "", d) for d in str(value or "").split(",") if d]


def _pv_devices(
    vg: str, names: list[str], hidden: dict[tuple[str, str], list[dict[str, Any]]], depth: int = 0
) -> list[str]:
    """PV paths behind a devices column: a RAID or thin-pool LV names its hidden sub-LVs
    (mirror_rimage_0, pool_tdata), whose own rows name the PVs."""
    found: list[str] = []
    for name in names:
        if name.startswith("/"):
            subs = [name]
        elif depth < 8:  # sub-LVs nest a few levels at most (a raid1 of a cache...)
            rows = hidden.get((vg, name), [])
            subs = _pv_devices(
                vg, [d for r in rows for d in _devices(r.get("devices"))], hidden, depth + 1
            )
        else:
            subs = []
        found += [d for d in subs if d not in found]
    return found


def parse_lvs(text: str) -> list[LogicalVolume]:
    """Visible LVs; a thin pool gets its hidden metadata LV's size. An LV with several
    segments has one row per segment: they are merged (devices collected). `devices` are
    the PVs the LV's data sits on, also through hidden sub-LVs (RAID images, pool data and
    metadata)."""
    rows = _rows("lvs", text, "lv")
    hidden: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        if str(r["lv_name"]).startswith("["):
            hidden.setdefault((str(r["vg_name"]), str(r["lv_name"]).strip("[]")), []).append(r)
    lvs: dict[str, LogicalVolume] = {}
    for r in rows:
        name = str(r["lv_name"])
        if name.startswith("["):
            continue
        uuid = str(r["lv_uuid"])
        vg = str(r["vg_name"])
        devices = _pv_devices(vg, _devices(r.get("devices")), hidden)
        if uuid in lvs:
            for dev in devices:
                if dev not in lvs[uuid].devices:
                    lvs[uuid].devices.append(dev)
            continue
        segtype = str(r.get("segtype") or "linear")
        meta_rows = hidden.get((vg, f"{name}_tmeta"))
        meta = meta_rows[0] if meta_rows else None
        if meta_rows:
            devices += [d for d in _pv_devices(vg, [f"{name}_tmeta"], hidden) if d not in devices]
        lvs[uuid] = LogicalVolume(
            vg=vg,
            name=name,
            uuid=uuid,
            size=to_int(r.get("lv_size")) or 0,
            segtype=segtype,
            path=nonempty(r.get("lv_dm_path")) or nonempty(r.get("lv_path")) or f"/dev/{vg}/{name}",
            stripes=to_int(r.get("stripes")),
            stripe_size=to_int(r.get("stripe_size")) or None,
            mirrors=to_int(r.get("stripes")) if segtype in ("mirror", "raid1") else None,
            region_size=to_int(r.get("region_size")) or None,
            pool=nonempty(r.get("pool_lv")),
            chunk_size=to_int(r.get("chunk_size")) or None,
            metadata_size=(to_int(meta.get("lv_size")) if meta else None)
            or to_int(r.get("lv_metadata_size"))
            or None,
            origin=nonempty(r.get("origin")),
            devices=devices,
            tags=_tags(r.get("lv_tags")),
            active=str(r.get("lv_active") or "active") == "active",
        )
    return list(lvs.values())
