"""mountonly's plan, state file, undo order and interlock, on layouts captured from recorded
tool outputs (the storage guest's real stacks, and the written RAID1 + LUKS2 + LVM machine).
Bringing the layers up for real is tested in tests/integration/test_mountonly_loop.py (loop
devices) and tests/vm/test_mountonly_guest.py (MD, LUKS and LVM in QEMU)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rescue_runtime import cli
from rescue_runtime.errors import UsageError
from rescue_runtime.layout.graph import build_graph
from rescue_runtime.layout.model import Layout, Mount
from rescue_runtime.mountonly import parse_key_files
from rescue_runtime.recover.activate import (
    BINDS,
    EFIVARS,
    ActivateError,
    Activator,
    Step,
    mount_options,
    plan,
    undo_order,
)
from rescue_runtime.recover.activate_state import (
    ALLOWED_AFTER,
    BREADCRUMB_NAME,
    INTERLOCKED,
    DiskStateError,
    Entry,
    State,
    StateError,
    StateFile,
    read_breadcrumb,
    require_known_disk_state,
)

REFUSAL = "the disks are no longer in a known state: reboot the rescue system first"


def labels(steps: list[Step]) -> list[str]:
    return [s.label for s in steps]


def step_id(step: Step) -> str | None:
    for component in (step.md, step.luks, step.vg, step.mount):
        if component is not None:
            return component.id
    return None


def assert_dependencies_first(layout: Layout, steps: list[Step]) -> None:
    """Every step comes after each md/luks/vg/mount step it depends on, directly or not."""
    graph = build_graph(layout)
    position = {step_id(s): i for i, s in enumerate(steps) if step_id(s)}
    for node, index in position.items():
        assert node is not None
        for dep in graph.closure([node]):
            if dep in position and dep != node:
                assert position[dep] < index, f"{node} planned before {dep}"


@pytest.mark.parametrize("which", ["guest_layout", "stack_layout"])
def test_plan_in_dependency_order(which: str, request: pytest.FixtureRequest) -> None:
    layout: Layout = request.getfixturevalue(which)
    steps = plan(layout)
    assert_dependencies_first(layout, steps)
    # Every file system mounted, swap never; each VG, array and LUKS volume once.
    mounts = [s.mount.mountpoint for s in steps if s.mount]
    assert sorted(mounts) == sorted(m.mountpoint for m in layout.mounts if m.fstype != "swap")
    assert sorted(s.vg.name for s in steps if s.vg) == sorted(vg.name for vg in layout.vgs)
    assert [s.md.path for s in steps if s.md] == [md.path for md in layout.mds]
    assert [s.luks.name for s in steps if s.luks] == [luks.name for luks in layout.luks]
    # The pseudo file systems come last, /dev before /dev/pts.
    assert [s.bind for s in steps if s.kind == "bind"] == list(BINDS)
    assert all(s.kind == "bind" for s in steps[-len(BINDS) :])


def test_plan_guest_chain(guest_layout: Layout) -> None:
    order = labels(plan(guest_layout))
    chain = ["md /dev/md0", "luks secure", "vg vgsec", "mount /srv/sec/home"]
    assert [order.index(x) for x in chain] == sorted(order.index(x) for x in chain), order
    assert order.index("vg vggpt") < order.index("mount /srv/gpt/root"), order
    # Both btrfs mounts of the one file system, each with its subvolume.
    btr = {s.mount.mountpoint: s.mount for s in plan(guest_layout) if s.mount}
    assert "subvol=/@home" in mount_options(btr["/srv/btr-home"], ro=False)


def test_plan_stack_raid_and_luks_before_the_vg(stack_layout: Layout) -> None:
    order = labels(plan(stack_layout, efi=True))
    assert order.index("md /dev/md0") < order.index("vg vg0")
    assert order.index("luks cryptpv") < order.index("vg vg0")
    assert order.index("mount /") < order.index("mount /srv") < order.index("bind /proc")
    assert order[-1] == f"bind {EFIVARS}"


def mount(**kw: object) -> Mount:
    base: dict[str, object] = {"mountpoint": "/x", "device": "/dev/vda1", "fstype": "ext4"}
    base.update(kw)
    return Mount(**base)  # type: ignore[arg-type]


def test_mount_options() -> None:
    fstab = ["defaults", "noatime", "nofail", "x-systemd.automount", "errors=remount-ro"]
    assert mount_options(mount(fstab_options=fstab), ro=False) == [
        "rw",
        "noatime",
        "errors=remount-ro",
    ]
    assert mount_options(mount(fstab_options=["rw", "noatime"]), ro=True) == ["ro", "noatime"]
    # btrfs: fstab's subvol= as written (subvolid dropped: ids are the same, names clearer) ...
    sub = mount(fstype="btrfs", fsroot="/@home", fstab_options=["subvol=@home", "subvolid=257"])
    assert mount_options(sub, ro=False) == ["rw", "subvol=@home"]
    # ... the mounted subvolume when fstab has no entry, the default one when fstab says so.
    assert mount_options(mount(fstype="btrfs", fsroot="/@"), ro=False) == ["rw", "subvol=/@"]
    plain = mount(fstype="btrfs", fsroot="/@", fstab_options=["defaults"])
    assert mount_options(plain, ro=False) == ["rw"]


def test_noauto_fstab_entries_are_not_mounted(stack_layout: Layout) -> None:
    layout = Layout(**{**stack_layout.__dict__, "mounts": list(stack_layout.mounts)})
    layout.mounts.append(
        mount(mountpoint="/media/usb", mounted=False, fstab_options=["noauto", "user"])
    )
    assert "mount /media/usb" not in labels(plan(layout))


def test_state_file_records_before_and_after(tmp_path: Path) -> None:
    files = StateFile(tmp_path)
    state = State(target="/mnt/local", started_at="now")
    assert files.load() is None and read_breadcrumb(tmp_path) is None
    first = Entry("md", device="/dev/md0", uuid="u")
    files.begin(state, first, "mountonly")
    # Written before the step runs: a failure now still leaves it recorded (pending).
    loaded = files.load()
    assert loaded is not None and loaded.entries == [first] and not loaded.entries[0].done
    assert read_breadcrumb(tmp_path) is not None
    files.done(state, first)
    second = Entry("mount", path="/mnt/local", device="/dev/mapper/vg-root")
    files.begin(state, second, "mountonly")
    again = files.load()
    assert again is not None and [e.done for e in again.entries] == [True, False]
    assert again.target == "/mnt/local"
    # No temporary file left beside it.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["activate.json", BREADCRUMB_NAME]
    files.forget(state, second)
    files.forget(state, first)
    assert not files.path.exists()
    assert read_breadcrumb(tmp_path) is not None  # only a reboot clears it


def test_breadcrumb_keeps_the_first_command(tmp_path: Path) -> None:
    files = StateFile(tmp_path)
    state = State(target="/t")
    files.begin(state, Entry("vg", name="a"), "mountonly")
    first = read_breadcrumb(tmp_path)
    files.begin(state, Entry("vg", name="b"), "other")
    assert read_breadcrumb(tmp_path) == first and first is not None
    assert first["command"] == "mountonly"


def test_unreadable_state_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "activate.json").write_text('{"target": "/t", "entries": [{"kind": "zap"}]}')
    with pytest.raises(StateError, match=r"cannot be read.*zap.*reboot"):
        StateFile(tmp_path).load()


def test_undo_in_reverse_order_pending_included() -> None:
    entries = [
        Entry("md", device="/dev/md0", done=True),
        Entry("luks", name="secure", device="/dev/md0", done=True),
        Entry("vg", name="vgsec", done=True),
        Entry("mount", path="/mnt/local", device="/dev/mapper/vgsec-root", done=True),
        Entry("mount", path="/mnt/local/boot", device="/dev/vda1", done=True),
        Entry("bind", path="/mnt/local/proc", device="/proc", done=False),
    ]
    commands = [argv for _, argv in undo_order(State(target="/mnt/local", entries=entries))]
    assert commands == [
        ["umount", "/mnt/local/proc"],
        ["umount", "/mnt/local/boot"],
        ["umount", "/mnt/local"],
        ["lvm", "vgchange", "--activate", "n", "vgsec"],
        ["cryptsetup", "close", "secure"],
        ["mdadm", "--stop", "/dev/md0"],
    ]


@pytest.mark.parametrize("command", sorted(INTERLOCKED))
def test_interlock_refuses_after_mountonly(tmp_path: Path, command: str) -> None:
    require_known_disk_state(command, force=False, directory=tmp_path)  # no breadcrumb yet
    StateFile(tmp_path).begin(State(target="/t"), Entry("md", device="/dev/md0"), "mountonly")
    with pytest.raises(DiskStateError, match=REFUSAL):
        require_known_disk_state(command, force=False, directory=tmp_path)


@pytest.mark.parametrize("command", sorted(ALLOWED_AFTER))
def test_interlock_allows_the_named_commands(tmp_path: Path, command: str) -> None:
    StateFile(tmp_path).begin(State(target="/t"), Entry("md", device="/dev/md0"), "mountonly")
    require_known_disk_state(command, force=False, directory=tmp_path)


def test_interlock_force_warns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    StateFile(tmp_path).begin(State(target="/t"), Entry("md", device="/dev/md0"), "mountonly")
    require_known_disk_state("recover", force=True, directory=tmp_path)
    err = capsys.readouterr().err
    assert "warning: the disks are no longer in a known state" in err and "--force" in err


def test_cli_recover_and_mountonly_refuse_after_the_breadcrumb(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MKMEDIA_RUN_DIR", str(tmp_path))
    StateFile(tmp_path).begin(State(target="/t"), Entry("md", device="/dev/md0"), "mountonly")
    for argv in (["recover"], ["mountonly", "--dir", str(tmp_path / "none")]):
        assert cli.main(argv) == DiskStateError.exit_code
        err = capsys.readouterr().err
        assert REFUSAL in err and "Traceback" not in err, err
    # Allowed: umount runs (it finds the pending array is not up and forgets it).
    assert cli.main(["umount"]) == 0
    assert not (tmp_path / "activate.json").exists()


def test_mountonly_before_any_change_leaves_no_breadcrumb(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run that stops before changing anything (no saved layout) is no reason to reboot."""
    monkeypatch.setenv("MKMEDIA_RUN_DIR", str(tmp_path))
    assert cli.main(["mountonly", "--dir", str(tmp_path / "none")]) != 0
    assert "No saved layout" in capsys.readouterr().err
    assert read_breadcrumb(tmp_path) is None


def test_key_files(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("x")
    assert parse_key_files([f"secure={key}"], ["secure"]) == {"secure": str(key)}
    assert parse_key_files([str(key)], ["a", "b"]) == {"*": str(key)}
    with pytest.raises(UsageError, match=r"no LUKS mapping 'other'.*secure"):
        parse_key_files([f"other={key}"], ["secure"])
    with pytest.raises(UsageError, match="is no file"):
        parse_key_files([f"secure={tmp_path / 'missing'}"], ["secure"])


def test_nothing_to_mount_changes_nothing(tmp_path: Path) -> None:
    files = StateFile(tmp_path)
    with pytest.raises(ActivateError, match="no file system to mount; nothing was changed"):
        Activator(Layout(), target=str(tmp_path / "local"), state_file=files).run()
    assert read_breadcrumb(tmp_path) is None and files.load() is None
    assert not (tmp_path / "local").exists()
