"""`xfs_info` output, from xfsprogs 3.x ("naming =version 2 bsize=4096 ascii-ci=0") through
6.x (with reflink, bigtime, inobtcount, nrext64): a section name, then key=value pairs."""

from __future__ import annotations

import re

from rescue_runtime.layout.model import XfsParams
from rescue_runtime.layout.parse.common import ParseError

_PAIR = re.compile(r"([a-z][a-z0-9-]*)=([^\s,]+)")
FEATURES = (
    "crc",
    "finobt",
    "sparse",
    "rmapbt",
    "reflink",
    "bigtime",
    "inobtcount",
    "nrext64",
    "attr",
    "projid32bit",
    "ftype",
    "lazy-count",
    "ascii-ci",
)


def parse(text: str) -> XfsParams:
    sections: dict[str, dict[str, str]] = {}
    section = ""
    for line in text.splitlines():
        head, sep, rest = line.partition("=")
        if not sep:
            continue
        if head.strip():
            section = head.strip()
            rest_text = rest
        else:
            rest_text = rest
        # "naming =version 2" and "log =internal log" carry a word value after the "=".
        values = sections.setdefault(section, {})
        first = rest_text.strip().split("  ")[0]
        if head.strip() and "=" not in first:
            values["_"] = first.strip()
        for key, value in _PAIR.findall(rest_text):
            values.setdefault(key, value)
    meta = sections.get("meta-data")
    data = sections.get("data")
    if meta is None or data is None:
        raise ParseError("xfs_info", "no meta-data or data section")

    def num(sec: dict[str, str] | None, key: str) -> int | None:
        if sec is None or key not in sec:
            return None
        try:
            return int(sec[key])
        except ValueError:
            return None

    naming = sections.get("naming", {})
    log = sections.get("log", {})
    features: dict[str, int] = {}
    for sec in (meta, naming, log):
        for key in FEATURES:
            if key in sec and key not in features and sec[key].isdigit():
                features[key] = int(sec[key])
    version = re.search(r"version (\d+)", naming.get("_", ""))
    return XfsParams(
        block_size=num(data, "bsize"),
        inode_size=num(meta, "isize"),
        sector_size=num(meta, "sectsz"),
        agcount=num(meta, "agcount"),
        data_blocks=num(data, "blocks"),
        log_blocks=num(log, "blocks"),
        log_internal="internal" in log.get("_", "internal"),
        sunit=num(data, "sunit"),
        swidth=num(data, "swidth"),
        naming_version=int(version.group(1)) if version else None,
        features=features,
    )
