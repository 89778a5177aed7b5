"""Layering order, list append/remove/replace, variable expansion, --set."""

from __future__ import annotations

from pathlib import Path

import pytest

from mkmedia.config import load_config
from mkmedia.host.sysinfo import SystemInfo
from rescue_runtime.errors import ConfigError
from tests.files import write_file as write


def test_layers_apply_in_documented_order(
    data_dir: Path, config_dir: Path, fake_system: SystemInfo, tmp_path: Path
) -> None:
    recipes = data_dir / "recipes"
    # Each layer sets ISO_VOLID to its own name (a volume label) and appends one program.
    write(recipes / "default.yaml", "ISO_VOLID: DEFAULT\nPROGS: [p-default]\n")
    write(recipes / "arch/x86_64.yaml", "ISO_VOLID: ARCH\nPROGS: [p-arch]\n")
    write(recipes / "os/debian.yaml", "ISO_VOLID: OS\nPROGS: [p-os]\n")
    write(recipes / "os/debian/12.yaml", "ISO_VOLID: OSVER\nPROGS: [p-osver]\n")
    write(tmp_path / "hw/base.yaml", "ISO_VOLID: BASE\nPROGS: [p-base]\n")
    recipe = write(
        tmp_path / "hw/dl380.yaml", "extends: base\nISO_VOLID: RECIPE\nPROGS: [p-recipe]\n"
    )
    write(config_dir / "site.yaml", "ISO_VOLID: SITE\nPROGS: [p-site]\n")
    write(config_dir / "local.yaml", "ISO_VOLID: LOCAL\nPROGS: [p-local]\n")

    config = load_config(recipe=recipe, config_dir=config_dir, system=fake_system)
    assert config.get_list("PROGS") == [
        "p-default",
        "p-arch",
        "p-os",
        "p-osver",
        "p-base",
        "p-recipe",
        "p-site",
        "p-local",
    ]
    assert config.get_str("ISO_VOLID") == "LOCAL"
    assert "local.yaml" in config.origin_text("ISO_VOLID")

    with_set = load_config(
        recipe=recipe, config_dir=config_dir, system=fake_system, sets=["ISO_VOLID=CLI"]
    )
    assert with_set.get_str("ISO_VOLID") == "CLI"
    assert with_set.origin_text("ISO_VOLID") == "--set ISO_VOLID"

    # Without local.yaml, site wins; the layer list reports local as missing.
    (config_dir / "local.yaml").unlink()
    config = load_config(recipe=recipe, config_dir=config_dir, system=fake_system)
    assert config.get_str("ISO_VOLID") == "SITE"
    statuses = {layer.label: layer.status for layer in config.layers}
    assert statuses["local"] == "missing"
    assert statuses["site"] == "OK"


def test_list_append_remove_replace(
    data_dir: Path, config_dir: Path, fake_system: SystemInfo
) -> None:
    write(data_dir / "recipes/default.yaml", "PROGS: [a, b, c]\nMODULES: [m1, m2]\n")
    write(
        config_dir / "site.yaml",
        "PROGS:\n  remove: [b]\n  append: [d, a]\nMODULES: {replace: [m9]}\n",
    )
    config = load_config(config_dir=config_dir, system=fake_system)
    assert config.get_list("PROGS") == ["a", "c", "d"]  # no duplicate a
    assert config.get_list("MODULES") == ["m9"]

    config = load_config(
        config_dir=config_dir,
        system=fake_system,
        sets=["PROGS+=e", "PROGS-=a", "MODULES=x,y"],
    )
    assert config.get_list("PROGS") == ["c", "d", "e"]
    assert config.get_list("MODULES") == ["x", "y"]


def test_replace_with_empty_list(data_dir: Path, config_dir: Path, fake_system: SystemInfo) -> None:
    write(data_dir / "recipes/default.yaml", "PROGS: [a]\n")
    write(config_dir / "local.yaml", "PROGS: {replace: []}\n")
    assert load_config(config_dir=config_dir, system=fake_system).get_list("PROGS") == []


def test_variables_expand(
    data_dir: Path, config_dir: Path, fake_system: SystemInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MKMEDIA_TEST_SITE", "dc1")
    write(
        data_dir / "recipes/default.yaml",
        "OUTPUT_PREFIX: ${HOSTNAME}-${ARCH}\n"
        "SSH_ROOT_PASSWORD_HASH: ${OS_VENDOR}${OS_VERSION}-$${literal}\n"
        "KERNEL_CMDLINE: site=${env:MKMEDIA_TEST_SITE} kv=${KERNEL_VERSION}\n"
        'PROGS: ["/opt/${OS_VENDOR}/tool"]\n',
    )
    config = load_config(config_dir=config_dir, system=fake_system)
    assert config.get_str("OUTPUT_PREFIX") == "web01-x86_64"
    assert config.get_str("SSH_ROOT_PASSWORD_HASH") == "debian12-${literal}"
    # running kernel 6.1.0-9 has an image, so auto picks it (not the newer 6.1.0-10)
    assert config.get_str("KERNEL_CMDLINE") == "site=dc1 kv=6.1.0-9-amd64"
    assert config.get_list("PROGS") == ["/opt/debian/tool"]


def test_unknown_variable_is_an_error(
    data_dir: Path, config_dir: Path, fake_system: SystemInfo
) -> None:
    write(data_dir / "recipes/default.yaml", "ISO_VOLID: ${HOSTNAM}\n")
    with pytest.raises(ConfigError) as err:
        load_config(config_dir=config_dir, system=fake_system)
    text = str(err.value)
    assert "${HOSTNAM}" in text and "default.yaml, line 1" in text and "HOSTNAME" in text


def test_unset_environment_variable_is_an_error(
    data_dir: Path, config_dir: Path, fake_system: SystemInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MKMEDIA_NOT_SET", raising=False)
    write(data_dir / "recipes/default.yaml", "ISO_VOLID: ${env:MKMEDIA_NOT_SET}\n")
    with pytest.raises(ConfigError, match="MKMEDIA_NOT_SET, which is not set"):
        load_config(config_dir=config_dir, system=fake_system)


def test_extends_cycle_is_reported(
    data_dir: Path, config_dir: Path, fake_system: SystemInfo, tmp_path: Path
) -> None:
    write(tmp_path / "a.yaml", "extends: b\n")
    write(tmp_path / "b.yaml", "extends: a.yaml\n")
    with pytest.raises(ConfigError, match="circle"):
        load_config(recipe=tmp_path / "a.yaml", config_dir=config_dir, system=fake_system)


def test_extends_finds_recipes_by_name(
    data_dir: Path, config_dir: Path, fake_system: SystemInfo, tmp_path: Path
) -> None:
    write(data_dir / "recipes/hwclass/dl380.yaml", "MODULES: [hpsa]\n")
    recipe = write(tmp_path / "mine.yaml", "extends: [hwclass/dl380]\nMODULES: [tg3]\n")
    config = load_config(recipe=recipe, config_dir=config_dir, system=fake_system)
    assert config.get_list("MODULES") == ["hpsa", "tg3"]
