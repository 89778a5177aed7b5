"""mountonly's mount, bind and undo steps on real file systems on a loop device: capture a
mounted root (ext4) with an XFS /data, take it down, bring it back under another target from
the saved layout, and take it down again from the state file. MD, LUKS and LVM need
device-mapper, which this machine lacks: tests/vm/test_mountonly_guest.py covers them.

Needs root and loop devices (the build machine has both).
"""

from __future__ import annotations

from pathlib import Path

from rescue_runtime.layout.capture import capture
from rescue_runtime.recover.activate import Activator, deactivate, mounted_paths
from rescue_runtime.recover.activate_state import StateFile, read_breadcrumb
from rescue_runtime.run import run

# Root and loop devices, as the layout loop test needs.
from tests.integration.test_layout_loop import loop_disk, pytestmark  # noqa: F401

MiB = 1024 * 1024
# Not the layout loop test's UUIDs: the two may run at the same time on one machine.
ROOT_UUID = "5d1e2f3a-4b5c-4d6e-8f70-81a2b3c4d5e1"
DATA_UUID = "5d1e2f3a-4b5c-4d6e-8f70-81a2b3c4d5e2"


def test_mount_bind_and_undo_on_a_loop_disk(tmp_path: Path) -> None:
    table = "label: gpt\nstart=2048, size=64MiB, type=linux\nsize=320MiB, type=linux\n"
    with loop_disk(tmp_path / "disk.img", 400 * MiB, table) as disk:
        p1, p2 = disk.part(1), disk.part(2)
        run(["mkfs.ext4", "-q", "-F", "-U", ROOT_UUID, p1])
        run(["mkfs.xfs", "-q", "-f", "-m", f"uuid={DATA_UUID}", p2])
        root = disk.mount_root(
            tmp_path / "root",
            {"": p1, "data": p2},
            f"UUID={ROOT_UUID} / ext4 errors=remount-ro 0 1\n"
            f"UUID={DATA_UUID} /data xfs noatime,nofail 0 2\n",
        )
        (root / "data" / "file").write_text("data\n")
        layout = capture(str(root), devices=[disk.path])
        run(["umount", root / "data"])
        run(["umount", root])
        disk.mounts.clear()

        target = tmp_path / "local"
        state_file = StateFile(tmp_path / "run")
        said: list[str] = []
        try:
            activator = Activator(
                layout, target=str(target), state_file=state_file, say=said.append
            )
            notes = activator.run()
            assert (target / "data" / "file").read_text() == "data\n"
            assert (target / "etc" / "fstab").exists()
            up = mounted_paths()
            for path in ("", "/data", "/proc", "/sys", "/dev", "/run"):
                assert f"{target}{path}" in up, (path, up)
            state = state_file.load()
            assert state is not None and all(e.done for e in state.entries)
            kinds = [(e.kind, e.path.removeprefix(str(target))) for e in state.entries]
            assert kinds[:2] == [("mount", ""), ("mount", "/data")], kinds
            assert read_breadcrumb(state_file.directory) is not None
            options = run(["findmnt", "-n", "-o", "OPTIONS", target / "data"]).stdout
            assert "noatime" in options.split(",") and "rw" in options.split(","), options
            assert notes == [], notes

            # A second run over what is up mounts nothing twice.
            again = Activator(layout, target=str(target), state_file=state_file)
            again.run()
            assert len(mounted_paths()) == len(up)
            assert state_file.load() == state
        finally:
            taken = deactivate(state_file, say=said.append)
        assert not [p for p in mounted_paths() if p.startswith(str(target))]
        assert taken[-2:] == [f"mount {target}/data", f"mount {target}"], taken
        assert not state_file.path.exists()

        # Read-only: the same layout, nothing written.
        try:
            Activator(layout, target=str(target), ro=True, state_file=state_file).run()
            options = run(["findmnt", "-n", "-o", "OPTIONS", target]).stdout.split(",")
            assert options[0] == "ro", options
        finally:
            deactivate(state_file, say=said.append)
        assert not [p for p in mounted_paths() if p.startswith(str(target))]
