"""Every recipe the project ships loads cleanly on top of the built-in layers."""

from __future__ import annotations

from pathlib import Path

import pytest

from mkmedia.config import load_config
from mkmedia.host.sysinfo import SystemInfo

REPO = Path(__file__).resolve().parents[2]
BUILTIN = REPO / "mkmedia" / "data" / "recipes"
SHIPPED = sorted(
    path
    for folder in (BUILTIN / "hwclass", BUILTIN / "examples", REPO / "tests/data/recipes")
    for path in folder.glob("*.yaml")
)


@pytest.mark.parametrize("recipe", SHIPPED, ids=lambda p: p.name)
def test_shipped_recipe_loads(recipe: Path, tmp_path: Path, fake_system: SystemInfo) -> None:
    config = load_config(recipe=recipe, config_dir=tmp_path, system=fake_system)
    assert config.get_list("REQUIRED_PROGS"), "the default layer's lists are still there"
    assert any(layer.path == recipe for layer in config.layers)
