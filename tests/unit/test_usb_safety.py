"""`mkmedia format` refuses the wrong disk (ReaR issue 1271), and --yes/--force mean only what
they say: --yes skips the question, --force overrules only the layout and removable checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from mkmedia.usb import format as usbformat
from mkmedia.usb import safety
from rescue_runtime.errors import UsageError
from rescue_runtime.layout.model import Disk, Layout


def stick(**changes: object) -> safety.Target:
    target = safety.Target(
        path=Path("/dev/sdz"),
        block=True,
        size=8 * 2**30,
        model="Flash Disk",
        serial="USB123",
        transport="usb",
        removable=True,
        identities={"/dev/sdz"},
    )
    for name, value in changes.items():
        setattr(target, name, value)
    return target


def saved(*disks: Disk) -> list[tuple[str, set[str]]]:
    return safety.layout_disks(Layout(disks=list(disks)))


def reasons(target: safety.Target, layout: list[tuple[str, set[str]]] = (), root=()) -> list[str]:  # type: ignore[assignment]
    return [r.reason for r in safety.refusals(target, layout, set(root))]


def test_a_removable_unmounted_stick_outside_the_layout_passes() -> None:
    assert reasons(stick(), saved(Disk("/dev/sda", 8 * 2**30, serial="DISK1"))) == []


def test_same_size_as_a_layout_disk_is_no_reason_and_no_excuse() -> None:
    # ReaR 1271: identity, never size, decides
    other = Disk("/dev/sda", 8 * 2**30, serial="DISK1")
    assert reasons(stick(), saved(other)) == []
    same = Disk("/dev/sdb", 16 * 2**30, serial="USB123")  # renamed since the layout was saved
    (reason,) = reasons(stick(), saved(same))
    assert "saved layout" in reason and "/dev/sdb" in reason


@pytest.mark.parametrize(
    ("disk", "why"),
    [
        (Disk("/dev/sdz", 1), "path"),
        (Disk("/dev/nvme0n1", 1, wwn="eui.1"), "wwn"),
        (Disk("/dev/sdq", 1, by_id=["/dev/disk/by-id/usb-x"]), "by-id"),
    ],
)
def test_a_disk_of_the_saved_layout_is_refused(disk: Disk, why: str) -> None:
    target = stick(wwn="eui.1", identities={"/dev/sdz", "/dev/disk/by-id/usb-x"})
    found = safety.refusals(target, saved(disk), set())
    assert [r.forcible for r in found] == [True], why
    assert "saved layout" in found[0].reason


def test_mounted_root_and_fixed_disks_are_refused() -> None:
    mounted = stick(mounts=["/dev/sdz1 on /media/usb"])
    (found,) = safety.refusals(mounted, [], set())
    assert "in use" in found.reason and "/media/usb" in found.reason and not found.forcible
    (found,) = safety.refusals(stick(), [], {"/dev/sdz", "/dev/sdz2"})
    assert "running root" in found.reason and not found.forcible
    (found,) = safety.refusals(stick(removable=False, transport="sata"), [], set())
    assert "not a removable" in found.reason and found.forcible


def test_an_image_file_has_no_removable_check_but_its_loop_mounts_count() -> None:
    image = stick(block=False, removable=False, identities={"/tmp/x.img"})
    assert reasons(image) == []
    image.mounts = ["/dev/loop7p3 on /mnt"]
    assert "in use" in reasons(image)[0]


def test_force_overrules_only_layout_and_removable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(safety, "root_disks", lambda: {"/dev/vda"})
    layout = Layout(disks=[Disk("/dev/sdz", 1)])
    fixed = stick(removable=False)
    with pytest.raises(UsageError, match="saved layout"):
        usbformat.check_target(fixed, layout, force=False)
    overruled = usbformat.check_target(fixed, layout, force=True)
    assert len(overruled) == 2
    with pytest.raises(UsageError, match="in use"):
        usbformat.check_target(stick(mounts=["/dev/sdz1 on /"]), None, force=True)
    monkeypatch.setattr(safety, "root_disks", lambda: {"/dev/sdz"})
    with pytest.raises(UsageError, match="running root"):
        usbformat.check_target(stick(), None, force=True)


def test_yes_skips_the_question_not_the_checks(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    image = tmp_path / "stick.img"
    image.write_bytes(bytes(4096))
    monkeypatch.setattr(safety, "inspect", lambda path: stick(mounts=["/dev/loop3 on /mnt"]))
    monkeypatch.setattr(safety, "root_disks", set)
    asked: list[str] = []
    with pytest.raises(UsageError, match="in use"):
        usbformat.format_stick(image, yes=True, ask=lambda q: asked.append(q) or "YES")
    assert asked == [] and image.read_bytes() == bytes(4096)


def test_any_answer_but_yes_writes_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    image = tmp_path / "stick.img"
    image.write_bytes(bytes(4096))
    monkeypatch.setattr(safety, "inspect", lambda path: stick())
    monkeypatch.setattr(safety, "root_disks", set)
    shown: list[str] = []
    with pytest.raises(UsageError, match="not YES"):
        usbformat.format_stick(image, ask=lambda q: "y", say=shown.append)
    assert "Flash Disk" in shown[0] and "USB123" in shown[0] and image.read_bytes() == bytes(4096)
