"""`findmnt -J -l -b -o SOURCE,TARGET,FSTYPE,OPTIONS,MAJ:MIN,FSROOT,UUID,LABEL`."""

from __future__ import annotations

from dataclasses import dataclass

from rescue_runtime.layout.parse.common import ParseError, load_json, nonempty

TOOL = "findmnt -J"
COLUMNS = "SOURCE,TARGET,FSTYPE,OPTIONS,MAJ:MIN,FSROOT,UUID,LABEL"


@dataclass
class LiveMount:
    source: str  # /dev/sda1 (findmnt's "[/subvol]" suffix removed)
    target: str
    fstype: str
    options: list[str]
    maj_min: str | None = None
    fsroot: str = "/"
    uuid: str | None = None
    label: str | None = None


def parse(text: str) -> list[LiveMount]:
    data = load_json(TOOL, text)
    if not isinstance(data, dict) or not isinstance(data.get("filesystems"), list):
        raise ParseError(TOOL, "no 'filesystems' list")
    mounts = []
    for raw in data["filesystems"]:
        source = str(raw.get("source") or "")
        # findmnt shows btrfs subvolumes and bind mounts as "/dev/sda2[/@home]".
        if source.endswith("]") and "[" in source:
            source = source[: source.index("[")]
        mounts.append(
            LiveMount(
                source=source,
                target=str(raw.get("target") or ""),
                fstype=str(raw.get("fstype") or ""),
                options=[o for o in str(raw.get("options") or "").split(",") if o],
                maj_min=nonempty(raw.get("maj:min")),
                fsroot=nonempty(raw.get("fsroot")) or "/",
                uuid=nonempty(raw.get("uuid")),
                label=nonempty(raw.get("label")),
            )
        )
    return mounts
