"""mkmedia installed the way a package installs it, not run from its checkout: the project's
wheel goes into a fresh virtual environment outside the checkout, and that `mkmedia` builds a
rescue ISO from a directory of its own, which then boots to the rescue prompt.

The wheel is built from a copy of the sources (so nothing beside them in the checkout, nor a
stale build/ directory, can leak in) with the project venv's setuptools (no build isolation);
the dependencies come from the package index pip is configured with.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mkmedia.emit import bootmenu
from mkmedia.qemu import Machine
from rescue_runtime.run import run, run_bytes
from tests.conftest import REPO
from tests.integration.test_iso_structure import extract
from tests.rescue_build import boot_to_prompt, build_media

pytestmark = pytest.mark.integration

# What a wheel is built from; everything else in the checkout stays out.
SOURCES = ("pyproject.toml", "README.md", "mkmedia", "rescue_runtime")
# The checkout's own import paths and data override must not reach the installed mkmedia.
LEAKS = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "MKMEDIA_DATA_DIR")
DECOMPRESS = {"zstd": "zstd -dc", "gzip": "gzip -dc", "xz": "xz -dc"}
# The menu entry that boots the rescue system (to its prompt, not an unattended recovery).
RESCUE_ENTRY = next(
    entry.id
    for entry in bootmenu.build_menu(host="h", kernel_cmdline="").entries
    if entry.kind == "linux" and "unattended" not in entry.cmdline.split()
)


@dataclass(frozen=True)
class Installed:
    base: Path  # the test's own directory, outside the checkout
    wheel: Path
    venv: Path
    env: dict[str, str]

    @property
    def mkmedia(self) -> str:
        return str(self.venv / "bin" / "mkmedia")


def check(argv: list[str], cwd: Path, env: dict[str, str]) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, cwd=cwd, env=env, check=False)
    assert result.returncode == 0, f"{argv} failed ({result.returncode}):\n{result.stderr[-4000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """Build the wheel and install it into a fresh venv."""
    base = tmp_path_factory.mktemp("wheel")
    src = base / "src"
    src.mkdir()
    for name in SOURCES:
        origin = REPO / name
        if origin.is_dir():
            shutil.copytree(origin, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(origin, src / name)
    env = {k: v for k, v in os.environ.items() if k not in LEAKS}
    wheels = base / "dist"
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    check([*pip_wheel, "-q", "-w", str(wheels), str(src)], cwd=base, env=env)
    (wheel,) = wheels.glob("mkmedia-*.whl")
    venv = base / "venv"
    # the interpreter the project's venv was made from, as `make setup` makes it
    check([str(Path(sys.base_prefix) / "bin" / "python3"), "-m", "venv", str(venv)], base, env)
    check([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)], base, env)
    return Installed(base=base, wheel=wheel, venv=venv, env=env)


def test_wheel_holds_recipes_and_templates(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as archive:
        names = set(archive.namelist())
    for needed in (
        "mkmedia/data/recipes/default.yaml",
        "mkmedia/data/recipes/arch/x86_64.yaml",
        "mkmedia/data/recipes/os/debian.yaml",
        "mkmedia/data/recipes/examples/minimal.yaml",
        "mkmedia/data/recipes/hwclass/generic-server.yaml",
        "mkmedia/data/bootloaders/grub.cfg.j2",
        "mkmedia/data/bootloaders/isolinux.cfg.j2",
        "rescue_runtime/init/__init__.py",
    ):
        assert needed in names, f"{needed} is not in the wheel"
    # every data file and every module of both packages
    shipped = {
        str(p.relative_to(REPO))
        for pattern in ("mkmedia/data/**/*.*", "mkmedia/**/*.py", "rescue_runtime/**/*.py")
        for p in REPO.glob(pattern)
        if "__pycache__" not in p.parts
    }
    assert shipped <= names, sorted(shipped - names)
    assert not [n for n in names if n.startswith(("tests/", "bench/", "recipes/", "bootloaders/"))]


@pytest.fixture(scope="module")
def dump(installed: Installed) -> dict[str, Any]:
    """`mkmedia dump --json examples/minimal` by the installed command."""
    config_dir = installed.base / "etc"
    config_dir.mkdir()
    argv = [installed.mkmedia, "dump", "--json", "examples/minimal", "-c", str(config_dir)]
    return json.loads(check(argv, cwd=installed.base, env=installed.env))  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def iso(installed: Installed) -> Path:
    """`mkmedia build examples/minimal` by the installed command, from outside the checkout."""
    work = installed.base / "build"
    work.mkdir()
    out = build_media(
        work,
        output="ISO",
        recipe=Path("examples/minimal"),  # a built-in recipe, found in the installed package
        sets=(f"BOOT_DEFAULT={RESCUE_ENTRY}", "BOOT_TIMEOUT=1"),
        command=(installed.mkmedia,),
        cwd=work,
        env=installed.env,
    )
    manifest = json.loads((out / "manifest.json").read_text())
    (path,) = [Path(a["path"]) for a in manifest["artifacts"] if a["kind"] == "iso"]
    return path


def test_installed_mkmedia_reads_its_own_data(installed: Installed, dump: dict[str, Any]) -> None:
    site = installed.venv / "lib"
    paths = {layer["label"]: layer["path"] for layer in dump["layers"]}
    for label in ("default", "arch", "os", "recipe minimal.yaml"):
        assert str(paths[label]).startswith(str(site)), (label, paths[label])
    assert not any(str(p).startswith(str(REPO)) for p in paths.values() if p)


def test_iso_from_the_installed_wheel(iso: Path, dump: dict[str, Any], tmp_path: Path) -> None:
    report = run(["xorriso", "-indev", iso, "-report_el_torito", "plain"])
    text = report.stdout + report.stderr
    assert re.search(r"El Torito boot img :\s+1\s+BIOS\s+y\s+none", text), text
    assert re.search(r"El Torito boot img :\s+2\s+UEFI\s+y\s+none", text), text
    assert re.search(r"El Torito img path :\s+1\s+/isolinux/isolinux.bin", text), text

    # The kernel is the one the installed mkmedia chose, byte for byte.
    kernel_version = dump["kernel_version"]
    kernel = extract(iso, "/boot/vmlinuz", tmp_path / "vmlinuz")
    assert kernel.read_bytes() == Path(f"/boot/vmlinuz-{kernel_version}").read_bytes()

    # The initrd carries the default recipe's programs (without the built-in recipe there
    # were none), the embedded rescue runtime and the kernel's modules.
    initrd = extract(iso, "/boot/initrd", tmp_path / "initrd")
    decompress = DECOMPRESS[dump["settings"]["COMPRESSION"]["value"]]
    listing = run_bytes(["sh", "-c", f'{decompress} "$1" | cpio -it --quiet', "sh", str(initrd)])
    names = set(listing.decode().split())
    for program in ("bash", "tar", "zstd", "lsblk", "sfdisk", "python3", "mkmedia"):
        assert {f"usr/bin/{program}", f"usr/sbin/{program}"} & names, program
    assert "init" in names
    assert any(f"/modules/{kernel_version}/" in n for n in names)

    # Both menus come from the installed templates, with the configured default.
    grub_cfg = extract(iso, "/boot/grub/grub.cfg", tmp_path / "grub.cfg").read_text()
    isolinux_cfg = extract(iso, "/isolinux/isolinux.cfg", tmp_path / "isolinux.cfg").read_text()
    assert f"set default={RESCUE_ENTRY}\n" in grub_cfg
    entry = rf"menuentry '[^']*' --id {RESCUE_ENTRY} \{{\n\tlinux /boot/vmlinuz "
    assert re.search(entry, grub_cfg), grub_cfg
    assert "\tinitrd /boot/initrd\n" in grub_cfg
    labels = re.split(r"\n(?=LABEL )", isolinux_cfg)
    assert [b.split()[1] for b in labels if "MENU DEFAULT" in b] == [RESCUE_ENTRY], isolinux_cfg
    assert "MENU TITLE mkmedia rescue system for " in isolinux_cfg
    assert "  LINUX /boot/vmlinuz\n  INITRD /boot/initrd\n" in isolinux_cfg


@pytest.mark.vm
def test_iso_from_the_installed_wheel_boots(iso: Path, tmp_path: Path) -> None:
    boot_to_prompt(Machine(firmware="bios", cdrom=iso, boot_order="d"), tmp_path / "console.log")
