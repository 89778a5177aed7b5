"""The stick's partition plan, its image index (USB_RETAIN per host) and its menu order."""

from __future__ import annotations

import re

import pytest

from mkmedia.emit import bootmenu
from mkmedia.usb import menu
from mkmedia.usb.partition import MIB_SECTORS, plan
from rescue_runtime.errors import ConfigError


def image(host: str, stamp: str) -> menu.Image:
    boot = bootmenu.build_menu(host=host, kernel_cmdline="quiet", boot_default="rescue")
    return menu.image_of(boot, host=host, stamp=stamp, directory=f"/rescue/{host}/{stamp}")


def test_plan_aligns_and_leaves_the_backup_gpt() -> None:
    total = 300 * MIB_SECTORS
    layout = plan(total, "both")
    assert [p.role for p in layout.parts] == ["bios_grub", "esp", "data"]
    assert all(p.start % MIB_SECTORS == 0 and p.sectors % MIB_SECTORS == 0 for p in layout.parts)
    data = layout.data()
    assert data.start + data.sectors <= total - 33
    assert [p.role for p in plan(total, "efi").parts] == ["esp", "data"]
    assert [p.role for p in plan(total, "bios").parts] == ["bios_grub", "data"]
    with pytest.raises(ConfigError, match="too small"):
        plan(80 * MIB_SECTORS, "both")


def test_retain_keeps_the_newest_per_host() -> None:
    index = menu.Index()
    for stamp in ("20260101T000000Z", "20260102T000000Z"):
        assert index.add(image("a", stamp), retain=2) == []
    index.add(image("b", "20260101T120000Z"), retain=2)
    dropped = index.add(image("a", "20260103T000000Z"), retain=2)
    assert [i.stamp for i in dropped] == ["20260101T000000Z"]
    assert sorted((i.host, i.stamp) for i in index.images) == [
        ("a", "20260102T000000Z"),
        ("a", "20260103T000000Z"),
        ("b", "20260101T120000Z"),
    ]
    assert index.add(image("a", "20260104T000000Z"), retain=0) == []  # 0 keeps all


def test_menu_lists_newest_first_with_unique_ids() -> None:
    index = menu.Index()
    for stamp in ("20260101T000000Z", "20260103T000000Z", "20260102T000000Z"):
        index.add(image("a", stamp), retain=0)
    again = menu.Index.parse(index.dump(), "test")
    text = menu.render(again)
    dirs = list(dict.fromkeys(re.findall(r"linux (/rescue/\S+)/vmlinuz", text)))
    assert dirs == [f"/rescue/a/2026010{n}T000000Z" for n in (3, 2, 1)]
    ids = re.findall(r"--id (\S+)", text)
    assert len(ids) == len(set(ids)) and ids[0] == "rescue" and ids[-1] == "local"
    assert "set default=rescue" in text and "2026-01-03 00:00:00 UTC" in text


def test_empty_stick_boots_local_and_damaged_index_is_named() -> None:
    text = menu.render(menu.Index())
    assert "set default=local" in text and "linux" not in text.replace("grub_platform", "")
    with pytest.raises(ConfigError, match=re.escape("stick.img:/mkmedia/images.json")):
        menu.Index.parse("{", "stick.img:/mkmedia/images.json")
