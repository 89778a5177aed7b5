"""The built-in data (recipes, boot loader templates) is package data, and missing data is an
error that names what is missing, never an empty default."""

from __future__ import annotations

import importlib.resources
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from mkmedia.config import Config, load_config
from mkmedia.emit import bootmenu
from mkmedia.host import paths
from mkmedia.host.sysinfo import SystemInfo
from rescue_runtime.errors import ConfigError, MissingError
from tests.conftest import REPO


def test_data_is_found_in_the_package_not_beside_the_source(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(paths.DATA_DIR_VARIABLE, raising=False)
    package = importlib.resources.files("mkmedia")
    assert paths.data_dir() == package / "data"
    assert (paths.recipes_dir() / "default.yaml").is_file()
    assert (paths.bootloaders_dir() / "grub.cfg.j2").is_file()


def test_missing_default_recipe_is_an_error(
    data_dir: Path, config_dir: Path, fake_system: SystemInfo
) -> None:
    (data_dir / "recipes" / "default.yaml").unlink()
    with pytest.raises(MissingError) as caught:
        load_config(config_dir=config_dir, system=fake_system)
    text = str(caught.value)
    assert str(data_dir / "recipes" / "default.yaml") in text
    assert "default recipe" in text and paths.DATA_DIR_VARIABLE in text


def test_missing_default_recipe_from_the_package_says_reinstall(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(paths.DATA_DIR_VARIABLE, raising=False)
    error = paths.missing_data("default recipe", tmp_path / "default.yaml")
    assert "installed mkmedia package" in str(error) and "reinstall" in str(error)


def test_missing_default_recipe_on_the_command_line(tmp_path: Path) -> None:
    """The user's view: one paragraph, the exit code for something missing, no traceback."""
    empty = tmp_path / "data"
    (empty / "recipes").mkdir(parents=True)
    env = dict(os.environ, **{paths.DATA_DIR_VARIABLE: str(empty)})
    env["MKMEDIA_LOCK_FILE"] = str(tmp_path / "lock")
    result = subprocess.run(
        [sys.executable, "-m", "mkmedia", "dump", "-c", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        check=False,
    )
    assert result.returncode == MissingError.exit_code, result.stderr
    assert "Traceback" not in result.stderr
    assert str(empty / "recipes" / "default.yaml") in result.stderr


def test_missing_template_is_an_error(data_dir: Path) -> None:
    (data_dir / "bootloaders").unlink()
    (data_dir / "bootloaders").mkdir()
    with pytest.raises(MissingError) as caught:
        bootmenu.render("grub.cfg.j2")
    assert str(data_dir / "bootloaders" / "grub.cfg.j2") in str(caught.value)


@pytest.fixture
def load(
    data_dir: Path,
    config_dir: Path,
    fake_system: SystemInfo,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[[str], Config]:
    """load_config with the recipe named as on the command line, from a directory of its own."""
    monkeypatch.chdir(tmp_path)
    return lambda recipe: load_config(
        recipe=Path(recipe), config_dir=config_dir, system=fake_system
    )


def test_builtin_recipe_by_name(data_dir: Path, load: Callable[[str], Config]) -> None:
    (data_dir / "recipes" / "examples").mkdir()
    (data_dir / "recipes" / "examples" / "small.yaml").write_text("PROGS: [from-builtin]\n")
    config = load("examples/small")  # no examples/ in the cwd: it can only be the built-in one
    assert "from-builtin" in config.get_list("PROGS")
    assert any(layer.path == data_dir / "recipes/examples/small.yaml" for layer in config.layers)


def test_a_file_wins_over_a_builtin_name(
    data_dir: Path, load: Callable[[str], Config], tmp_path: Path
) -> None:
    (data_dir / "recipes" / "mine.yaml").write_text("PROGS: [from-builtin]\n")
    (tmp_path / "mine.yaml").write_text("PROGS: [from-file]\n")
    config = load("mine.yaml")
    assert "from-file" in config.get_list("PROGS")
    assert "from-builtin" not in config.get_list("PROGS")


def test_unknown_recipe_names_both_places(data_dir: Path, load: Callable[[str], Config]) -> None:
    with pytest.raises(ConfigError) as caught:
        load("hwclass/nope")
    text = str(caught.value)
    assert "hwclass/nope" in text and str(data_dir / "recipes" / "hwclass/nope.yaml") in text


def test_every_data_file_is_declared_package_data() -> None:
    """A data file whose pattern pyproject does not list would be left out of the wheel."""
    import tomllib

    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["*"]
    data = REPO / "mkmedia" / "data"
    files = [p for p in data.rglob("*") if p.is_file()]
    assert files
    undeclared = [p for p in files if not any(p.match(pattern) for pattern in patterns)]
    assert not undeclared, undeclared
