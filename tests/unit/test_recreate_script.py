"""The recreate script generated from recorded layouts: the storage guest's (GPT + LVM, MBR
with logical partitions, RAID1 + LUKS2 + LVM, thin/striped/raid1 LVs, btrfs) and the
RAID1-with-spare + LUKS2 (argon2) + thin LVM stack. Real bash checks the syntax; golden
checks find each saved identity in the command that sets it, dependencies before what is
built on them, a guard around every component, and only the layout's disks written.
(tests/integration/test_recreate_loop.py and tests/vm/test_recreate_guest.py run it.)
"""

from __future__ import annotations

import copy
import re
import shlex
from pathlib import Path

import pytest

from rescue_runtime.cli import main
from rescue_runtime.layout.graph import build_graph
from rescue_runtime.layout.model import Layout
from rescue_runtime.layout.store import save
from rescue_runtime.recover.recreate import RecreatePlan, generate
from rescue_runtime.run import run

BLOCK = re.compile(r"^if begin (\S+)(?: \S+)?; then\n(.*?)^    finish\nfi$", re.M | re.S)


@pytest.fixture(scope="module", params=["guest", "stack"])
def case(request: pytest.FixtureRequest) -> tuple[Layout, RecreatePlan]:
    layout: Layout = request.getfixturevalue(f"{request.param}_layout")
    return layout, generate(layout)


def blocks(plan: RecreatePlan) -> dict[str, str]:
    """Component id -> the commands of its block, in script order."""
    return {shlex.split(m.group(1))[0]: m.group(2) for m in BLOCK.finditer(plan.script)}


def command(block: str, program: str) -> list[str]:
    lines = [line.strip() for line in block.splitlines() if line.strip().startswith(program)]
    assert lines, f"no {program} in:\n{block}"
    return shlex.split(lines[0])


def test_bash_accepts_the_script(case: tuple[Layout, RecreatePlan], tmp_path: Path) -> None:
    script = tmp_path / "recreate.sh"
    script.write_text(case[1].script)
    run(["bash", "-n", script])


def test_every_component_is_guarded_and_in_dependency_order(
    case: tuple[Layout, RecreatePlan],
) -> None:
    layout, plan = case
    found = blocks(plan)
    order = list(found)
    graph = build_graph(layout)
    # Partitions are in their disk's block; swap is turned on by restore, not here.
    ids = [i for i in graph.nodes if not i.startswith(("part:", "swap:"))]
    assert sorted(i for i in found if i in graph.nodes) == sorted(ids)
    assert plan.script.count("\n    finish\nfi") == len(found)
    for node in ids:
        for dep in graph.depends_on(node):
            dep = dep if not dep.startswith("part:") else f"disk:{graph.nodes[dep].disk}"  # type: ignore[attr-defined]
            assert order.index(dep) < order.index(node), (dep, node)
    # A VG's UUIDs are put back after its last LV and before anything uses its LVs.
    for vg in layout.vgs:
        lvs = [order.index(lv.id) for lv in layout.lvs if lv.vg == vg.name]
        ids_at = order.index(f"lvm-ids:{vg.name}")
        assert max(lvs) < ids_at
        users = [f.id for f in layout.filesystems if f.device.startswith(f"/dev/mapper/{vg.name}-")]
        assert all(ids_at < order.index(u) for u in users)
    # Mounts are guarded by what is mounted, not by a state file.
    assert all(
        '"$TARGET"' in line
        for line in plan.script.splitlines()
        if line.startswith("if begin mount:")
    )


def test_disk_identities_in_sfdisk_scripts(case: tuple[Layout, RecreatePlan]) -> None:
    layout, plan = case
    found = blocks(plan)
    for disk in layout.disks:
        body = found[disk.id]
        assert f"wipefs --all --force {disk.path}" in body
        if disk.table is None:
            assert "sfdisk" not in body
            continue
        assert f"label: {disk.table}" in body
        assert f"label-id: {disk.table_id}" in body
        sector = disk.logical_sector_size
        for part in disk.partitions:
            line = next(x for x in body.splitlines() if x.startswith(f"{part.path} : "))
            assert (
                f"start={part.start // sector}, size={part.size // sector}, type={part.type}"
                in line
            )
            if part.uuid and disk.table == "gpt":  # MBR PARTUUIDs follow from the label-id
                assert f"uuid={part.uuid.upper()}" in line
            if part.name:
                assert f'name="{part.name}"' in line
            if part.kind != "extended":
                assert f"wipefs --all --force {part.path}\n" in body


def test_stack_identities(case: tuple[Layout, RecreatePlan]) -> None:
    layout, plan = case
    found = blocks(plan)
    for md in layout.mds:
        argv = command(found[md.id], "mdadm")
        assert f"--uuid={md.uuid}" in argv and f"--metadata={md.metadata}" in argv
        assert f"--level={md.level}" in argv and "--assume-clean" in argv and "--run" in argv
        assert argv[-len(md.members + md.spares) :] == md.members + md.spares  # slot order
        assert f"--bitmap={md.bitmap}" in argv
        if md.spares:
            assert f"--spare-devices={len(md.spares)}" in argv
    for luks in layout.luks:
        argv = command(found[luks.id], "cryptsetup luksFormat")
        pairs = {argv[i]: argv[i + 1] for i in range(len(argv) - 1) if argv[i].startswith("--")}
        assert pairs["--uuid"] == luks.uuid and pairs["--cipher"] == luks.cipher
        assert pairs["--key-size"] == str(luks.key_size) and pairs["--pbkdf"] == luks.pbkdf
        assert pairs["--pbkdf-force-iterations"] == str(luks.pbkdf_iterations)
        assert pairs["--sector-size"] == str(luks.sector_size)
        assert pairs["--offset"] == str((luks.data_offset or 0) // 512)
        if luks.label:
            assert pairs["--label"] == luks.label
        if (luks.pbkdf or "").startswith("argon2"):
            assert pairs["--pbkdf-memory"] == str(luks.pbkdf_memory)
            assert pairs["--pbkdf-parallel"] == str(luks.pbkdf_parallel)
        assert argv[-1] == luks.device
        assert (
            f'cryptsetup open --key-file "$KEY_DIR/{luks.name}.key" {luks.device} {luks.name}'
            in found[luks.id]
        )
    for pv in layout.pvs:
        argv = command(found[pv.id], "lvm pvcreate")
        assert argv[argv.index("--uuid") + 1] == pv.uuid and argv[-1] == pv.device
    for vg in layout.vgs:
        argv = command(found[vg.id], "lvm vgcreate")
        assert argv[-len(vg.pvs) :] == vg.pvs
        assert argv[argv.index("--physicalextentsize") + 1] == f"{vg.extent_size // 1024}k"
        ids = found[f"lvm-ids:{vg.name}"]
        assert f'\\"{vg.uuid}\\"' in ids
        for lv in (lv for lv in layout.lvs if lv.vg == vg.name):
            assert f'$(lvm_uuid lv {lv.full_name})\\"/\\"{lv.uuid}\\"' in ids
        assert ids.index("vgcfgbackup") < ids.index("sed -i") < ids.index("vgcfgrestore")
    for lv in layout.lvs:
        argv = command(found[lv.id], "lvm lvcreate")
        assert argv[argv.index("--name") + 1] == lv.name
        if lv.segtype == "thin":
            assert argv[argv.index("--thinpool") + 1] == lv.pool
            assert argv[argv.index("--virtualsize") + 1] == f"{lv.size // 1024}k"
        else:
            assert argv[argv.index("--size") + 1] == f"{lv.size // 1024}k"
        if lv.segtype == "thin-pool" and lv.chunk_size:
            assert argv[argv.index("--chunksize") + 1] == f"{lv.chunk_size // 1024}k"
        if lv.segtype == "striped":
            assert argv[argv.index("--stripes") + 1] == str(lv.stripes)


def test_filesystem_identities(case: tuple[Layout, RecreatePlan]) -> None:
    layout, plan = case
    found = blocks(plan)
    program = {"ext4": "mke2fs", "ext3": "mke2fs", "xfs": "mkfs.xfs", "btrfs": "mkfs.btrfs",
               "swap": "mkswap", "vfat": "mkfs.vfat"}  # fmt: skip
    for fs in layout.filesystems:
        body = found[fs.id]
        line = next(x for x in body.splitlines() if program[fs.fstype] in x)
        if fs.fstype == "xfs":
            assert f"uuid={fs.uuid}" in line
        elif fs.fstype == "vfat":  # the volume id: blkid shows 5EED-0001, mkfs.vfat takes 5EED0001
            assert f" -i {(fs.uuid or '').replace('-', '')} " in line
        else:
            assert f" {fs.uuid} " in line
        if fs.label:
            assert f" {fs.label} " in line
        assert line.endswith(fs.device) or fs.ext is not None
        if fs.ext and fs.ext.features:
            assert "-O none," + ",".join(fs.ext.features) in line
        if fs.btrfs:
            subs = found[f"btrfs-subvolumes:{fs.device}"]
            created = re.findall(r"btrfs subvolume create \"\$WORK_DIR/[^/]+/([^\"]+)\"", subs)
            assert created == [s.path for s in sorted(fs.btrfs.subvolumes, key=lambda s: s.id)]
            for path in created:  # a nested one's parent directory is made before it
                if "/" in path:
                    parent = path.rsplit("/", 1)[0]
                    top = f'"$WORK_DIR/btrfs-{fs.uuid}'
                    mkdir = subs.index(f'mkdir -p {top}/{parent}"')
                    assert mkdir < subs.index(f"subvolume create {top}/{path}")
            if fs.btrfs.default_subvolume != 5:
                assert f'/{fs.btrfs.default_subvolume_path}"' in subs.split("set-default")[1]


def test_mounts_in_mount_order_under_target(case: tuple[Layout, RecreatePlan]) -> None:
    layout, plan = case
    found = blocks(plan)
    mounts = [i for i in found if i.startswith("mount:")]
    points = [i.removeprefix("mount:") for i in mounts]
    for i, point in enumerate(points):  # a parent before its children
        assert not any(point.startswith(p.rstrip("/") + "/") for p in points[i + 1 :] if p != point)
    for mount in layout.mounts:
        if mount.fstype == "swap":
            assert mount.id not in found  # restore turns swap on, not recreate
            continue
        line = command(found[mount.id], "mount")
        under = mount.mountpoint if mount.mountpoint != "/" else ""
        assert line[-1] == f"$TARGET{under}" and line[-2] == mount.device
        if mount.fstype == "btrfs":
            assert f"subvol={mount.fsroot}" in line


def test_programs_and_disks(case: tuple[Layout, RecreatePlan]) -> None:
    layout, plan = case
    assert plan.disks == [d.path for d in layout.disks]
    for program in (
        "wipefs",
        "sfdisk",
        "partprobe",
        "mdadm",
        "cryptsetup",
        "lvm",
        "mke2fs",
        "mount",
    ):
        assert program in plan.programs, program
    assert not [p for p in plan.programs if p.startswith(("$", "wait_", "key_"))]
    # Every device the script names is a target disk, one of its partitions, or a device
    # the script itself makes (MD, LUKS mapping, LV): nothing else can be written.
    made = {m.path for m in layout.mds} | {f"/dev/mapper/{x.name}" for x in layout.luks}
    made |= {lv.path for lv in layout.lvs}
    parts = {p.path for p in layout.partitions()}
    named = set(re.findall(r"(?<![\w/])/dev/[\w/.-]+", plan.script)) - {"/dev/urandom", "/dev/null"}
    assert named <= set(plan.disks) | parts | made, named - (set(plan.disks) | parts | made)


def test_header_backup_restores_instead_of_formatting(stack_layout: Layout) -> None:
    layout = copy.deepcopy(stack_layout)
    layout.luks[0].header_backup = "luks-header-cryptpv.img"
    body = blocks(generate(layout))[layout.luks[0].id]
    assert "luksFormat" not in body and "key_file" not in body
    assert "key_given cryptpv" in body
    assert (
        "cryptsetup luksHeaderRestore --batch-mode --header-backup-file "
        '"$LAYOUT_DIR/luks-header-cryptpv.img" /dev/vdc1' in body
    )


def test_layoutonly_script_only_and_refusal(
    guest_layout: Layout, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save(guest_layout, tmp_path / "layout")
    args = ["layoutonly", "--dir", str(tmp_path / "layout"), "--script-dir", str(tmp_path / "r")]
    assert main([*args, "--script-only"]) == 0
    out = capsys.readouterr().out
    path = Path(re.search(r"recreate script: (\S+)", out).group(1))  # type: ignore[union-attr]
    assert path.parent == tmp_path / "r" and path.stat().st_mode & 0o777 == 0o700
    assert path.read_text() in out and "set -euo pipefail" in out
    # This build machine is no rescue system: running needs --force, and nothing ran.
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "runs only inside the rescue system" in err and "--force" in err
    assert not list((tmp_path / "r").glob("state-*"))


def test_default_rescue_system_has_every_program(case: tuple[Layout, RecreatePlan]) -> None:
    """What layoutonly checks before it runs: the default recipe packs each program."""
    import yaml

    from mkmedia.host.paths import data_dir

    recipe = yaml.safe_load((data_dir() / "recipes" / "default.yaml").read_text())
    packed = {Path(p).name for p in recipe["REQUIRED_PROGS"] + recipe["PROGS"]}
    assert [p for p in case[1].programs if p not in packed] == []


def test_luks_pbkdf_cost_parsed() -> None:
    """The cost parameters luksFormat gets back, from real luksDump outputs."""
    from rescue_runtime.layout.parse import cryptsetup

    data = Path(__file__).resolve().parents[1] / "data" / "layout" / "cryptsetup"
    luks1 = cryptsetup.parse_dump((data / "host-luks1.txt").read_text())
    assert (luks1.pbkdf, luks1.pbkdf_iterations) == ("pbkdf2", 1000)
    argon = cryptsetup.parse_dump((data / "host-luks2.txt").read_text())
    assert (argon.pbkdf, argon.pbkdf_iterations, argon.pbkdf_memory, argon.pbkdf_parallel) == (
        "argon2id",
        4,
        32768,
        2,
    )
    argon = cryptsetup.merge_json_metadata(argon, (data / "host-luks2-json.json").read_text())
    assert (argon.pbkdf_iterations, argon.pbkdf_memory, argon.pbkdf_parallel) == (4, 32768, 2)
    text = (data / "guest-luks2-pbkdf2.txt").read_text()
    pbkdf2 = cryptsetup.merge_json_metadata(
        cryptsetup.parse_dump(text), (data / "guest-luks2-pbkdf2-json.json").read_text()
    )
    assert (pbkdf2.pbkdf, pbkdf2.pbkdf_iterations, pbkdf2.pbkdf_memory) == ("pbkdf2", 1000, None)


def test_layoutonly_refuses_absent_disks(
    guest_layout: Layout, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    layout = copy.deepcopy(guest_layout)
    for n, disk in enumerate(layout.disks):  # names no machine has: the script cannot run
        disk.path = f"/dev/mkmedia-absent-{n}"
    save(layout, tmp_path / "layout")
    args = ["layoutonly", "--force", "--dir", str(tmp_path / "layout")]
    assert main([*args, "--script-dir", str(tmp_path / "r")]) == 6
    err = capsys.readouterr().err
    assert "/dev/mkmedia-absent-0" in err and "nothing was touched" in err
    assert not list((tmp_path / "r").glob("state-*"))
