"""Generate the recreate script: a saved layout back into disks, as a bash script to review.

The script (like ReaR's diskrestore.sh) rebuilds the layout in dependency order: disks
(signatures wiped, partition tables), MD arrays, LUKS, LVM, file systems, then mounts under
a target root. Each component is one guarded block: `begin ID` skips it when its state file
says it was finished, `finish` writes that file once the block's commands all succeeded, so
after a failure and a fix a second run continues where the first stopped. Every command is
traced (`set -x`) into the log; the first failure stops the script naming the component.

The layers live in recreate_disk.py, recreate_stack.py (MD, LUKS, LVM) and recreate_fs.py
(file systems, mounts); this module holds the script's frame and the order.
"""

from __future__ import annotations

import hashlib
import shlex
from dataclasses import dataclass, field

from rescue_runtime.layout.graph import build_graph, mount_order
from rescue_runtime.layout.model import (
    Filesystem,
    Layout,
    LogicalVolume,
    LuksDevice,
    MdArray,
    PhysicalVolume,
    VolumeGroup,
)
from rescue_runtime.layout.serial import to_json
from rescue_runtime.recover import recreate_disk, recreate_fs, recreate_stack
from rescue_runtime.recover.options import DEFAULT_TARGET
from rescue_runtime.recover.recreate_block import Block, quote

SCRIPT_DIR = "/var/lib/mkmedia/recreate"
# Key files live in the rescue system's RAM (/run), never on a target disk.
KEY_DIR = "/run/mkmedia/recreate/keys"
# Programs the frame itself uses (besides those the blocks name).
FRAME_PROGRAMS = ["bash", "mkdir", "dirname", "tee", "udevadm", "findmnt", "head", "sleep"]


@dataclass
class RecreatePlan:
    script: str
    programs: list[str]  # every program the script runs: verify checks the rescue system
    disks: list[str]  # the only disks the script writes
    warnings: list[str] = field(default_factory=list)  # what it cannot recreate, and why
    layout_digest: str = ""


PREAMBLE = r"""#!/bin/bash
# mkmedia recreate script for {hostname}: rebuilds the saved disk layout.
# Generated from {source} (layout digest {digest}).
# Review and edit it freely before it runs; it is re-runnable: a finished component leaves
# a state file in $STATE_DIR and is skipped next time (remove that directory to start over).
#
# It writes ONLY these disks (everything on them is lost):
{disk_lines}
set -euo pipefail
TARGET=${{TARGET:-{target}}}
STATE_DIR=${{STATE_DIR:-{state_dir}}}
WORK_DIR=${{WORK_DIR:-{work_dir}}}
KEY_DIR=${{KEY_DIR:-{key_dir}}}
LAYOUT_DIR=${{LAYOUT_DIR:-{layout_dir}}}
LOG=${{LOG:-{log}}}
COMPONENT=preamble
mkdir -p "$STATE_DIR" "$WORK_DIR" "$(dirname "$LOG")"
# Everything into the log too: the script runs itself once more through tee (a pipeline,
# so tee has written the last line when the script's caller goes on).
if [ -z "${{RECREATE_LOGGING:-}}" ]; then
    RECREATE_LOGGING=1 bash "$0" "$@" 2>&1 | tee -a "$LOG"
    exit "${{PIPESTATUS[0]}}"
fi
trap 'echo "recreate: FAILED in $COMPONENT (line $LINENO, status $?); fix the cause and" \
    "run this script again: finished components are skipped" >&2' ERR
PS4='+ [$COMPONENT] '

# begin ID [MOUNTPOINT]: succeeds when ID still has to be built (mounts: when not mounted).
begin() {{
    {{ set +x; }} 2>/dev/null
    COMPONENT=$1
    if [ -n "${{2:-}}" ] && findmnt -rn --mountpoint "$2" >/dev/null; then
        echo "recreate: $1 is mounted already, skipped"; return 1
    fi
    if [ -z "${{2:-}}" ] && [ -e "$STATE_DIR/${{1//[\/:]/_}}" ]; then
        echo "recreate: $1 was finished before, skipped"; return 1
    fi
    echo "recreate: $1"
    set -x
}}
# finish: the current component's commands all succeeded.
finish() {{
    {{ set +x; }} 2>/dev/null
    : > "$STATE_DIR/${{COMPONENT//[\/:]/_}}"
}}
# wait_dev DEV: udev has made the device node.
wait_dev() {{
    udevadm settle
    local n=0
    until [ -b "$1" ]; do
        n=$((n + 1)); [ "$n" -le 50 ] || {{ echo "recreate: $1 did not appear" >&2; return 1; }}
        sleep 0.2
    done
}}
# key_file NAME: the LUKS key file for NAME, made (random, mode 0600) when it is missing.
key_file() {{
    mkdir -p "$KEY_DIR"
    if [ ! -s "$KEY_DIR/$1.key" ]; then
        (umask 077; head -c 64 /dev/urandom > "$KEY_DIR/$1.key")
        echo "recreate: temporary LUKS key for $1 in $KEY_DIR/$1.key" >&2
    fi
}}
# key_given NAME: a header restored from backup opens only with one of its own keys.
key_given() {{
    [ -s "$KEY_DIR/$1.key" ] || {{
        echo "recreate: put a passphrase or key file of the original $1 into $KEY_DIR/$1.key" >&2
        return 1
    }}
}}
# LVM without dmeventd and, when the rescue system lacks it, without thin_check.
LVM_CONFIG='activation/monitoring=0'
command -v thin_check >/dev/null || LVM_CONFIG="$LVM_CONFIG global/thin_check_executable=\"\""
lvm() {{ command lvm "$@" --config "$LVM_CONFIG"; }}
# lvm_uuid KIND NAME: the UUID LVM gave a VG or LV ("vg vg0", "lv vg0/root").
lvm_uuid() {{ lvm "${{1}}s" --noheadings -o "${{1}}_uuid" "$2" | tr -d ' '; }}
"""


def layout_digest(layout: Layout) -> str:
    return hashlib.sha256(to_json(layout).encode()).hexdigest()[:16]


def ordered_blocks(layout: Layout, warnings: list[str]) -> list[Block]:
    """All blocks, in dependency order: disks, the storage stack, file systems, mounts."""
    graph = build_graph(layout)
    for owner, devices in graph.unresolved.items():
        warnings.append(f"{owner} is built on {', '.join(devices)}, which the layout lacks")
    order = graph.creation_order()
    blocks: list[Block] = []
    for disk in layout.disks:
        blocks.append(recreate_disk.disk_block(disk))
    for mp in layout.multipaths:
        warnings.append(f"{mp.id}: multipath maps are not created; assemble them beforehand")
    last_lv = {
        lv.vg: lv.id for lv in (graph.nodes[i] for i in order) if isinstance(lv, LogicalVolume)
    }
    for node_id in order:
        node = graph.nodes[node_id]
        if isinstance(node, MdArray):
            blocks.append(recreate_stack.md_block(node))
        elif isinstance(node, LuksDevice):
            blocks.append(recreate_stack.luks_block(node))
        elif isinstance(node, PhysicalVolume):
            blocks.append(recreate_stack.pv_block(node))
        elif isinstance(node, VolumeGroup):
            blocks.append(recreate_stack.vg_block(node))
        elif isinstance(node, LogicalVolume):
            blocks.append(recreate_stack.lv_block(node, layout))
            if last_lv.get(node.vg) == node_id:
                vg = next(v for v in layout.vgs if v.name == node.vg)
                blocks.append(recreate_stack.lvm_ids_block(vg, layout))
    for node_id in order:
        node = graph.nodes[node_id]
        if isinstance(node, Filesystem):
            blocks.extend(recreate_fs.fs_blocks(node, warnings))
    for mount in mount_order(layout):
        block = recreate_fs.mount_block(mount, layout, warnings)
        if block is not None:
            blocks.append(block)
    return blocks


def render_block(block: Block) -> str:
    out = [f"# --- {block.title} ---"]
    out += [f"# {c}" for c in block.comments]
    probe = f' "$TARGET"{quote(block.probe_mount)}' if block.probe_mount is not None else ""
    out.append(f"if begin {quote(block.id)}{probe}; then")
    for line in block.lines:
        first, *rest = line.split("\n")  # a here-document's body and EOF stay in column 0
        out.append("    " + first)
        out.extend(rest)
    out.append("    finish")
    out.append("fi")
    return "\n".join(out)


def generate(
    layout: Layout,
    *,
    target: str = DEFAULT_TARGET,
    script_dir: str = SCRIPT_DIR,
    layout_dir: str = "/var/lib/mkmedia/layout",
    source: str = "the saved layout",
) -> RecreatePlan:
    """The recreate script for `layout`, the programs it needs and the disks it writes."""
    warnings: list[str] = []
    blocks = ordered_blocks(layout, warnings)
    digest = layout_digest(layout)
    disks = [d.path for d in layout.disks]
    head = PREAMBLE.format(
        hostname=layout.hostname or "this machine",
        source=source,
        digest=digest,
        disk_lines="\n".join(f"#   {d}" for d in disks) or "#   (none)",
        target=shlex.quote(target),
        state_dir=shlex.quote(f"{script_dir}/state-{digest}"),
        work_dir=shlex.quote(f"{script_dir}/work-{digest}"),
        key_dir=shlex.quote(KEY_DIR),
        layout_dir=shlex.quote(layout_dir),
        log=shlex.quote(f"{script_dir}/recreate-{digest}.log"),
    )
    notes = "".join(f"# WARNING: {w}\n" for w in warnings)
    body = "\n\n".join(render_block(b) for b in blocks)
    tail = '\nCOMPONENT=done\necho "recreate: all components done; mounted under $TARGET"\n'
    programs: list[str] = list(FRAME_PROGRAMS)
    for block in blocks:
        programs += [p for p in block.programs if p not in programs]
    return RecreatePlan(
        script=f"{head}\n{notes}{body}\n{tail}",
        programs=programs,
        disks=disks,
        warnings=warnings,
        layout_digest=digest,
    )
