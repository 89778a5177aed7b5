"""Kernel discovery and choice on fake /boot and /lib/modules trees."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from mkmedia.kernel.choice import (
    choose_kernel,
    choose_once,
    find_kernels,
    image_version,
    kernel_config,
    parse_kernel_config,
    version_key,
)
from rescue_runtime.errors import MissingError


def test_version_key_orders_numbers_numerically() -> None:
    versions = ["6.1.0-9-amd64", "6.1.0-56-amd64", "5.10.0-30-amd64", "6.10.2-amd64", "6.1.0-10"]
    assert sorted(versions, key=version_key) == [
        "5.10.0-30-amd64",
        "6.1.0-9-amd64",
        "6.1.0-10",
        "6.1.0-56-amd64",
        "6.10.2-amd64",
    ]


def test_version_key_tilde_and_extensions_like_dpkg() -> None:
    # Letters sort before other characters, and "+" (43) before "." (46).
    ordered = ["1.0~rc1", "1.0~rc2", "1.0", "1.0a", "1.0+b1", "1.0.1", "1.1"]
    assert sorted(reversed(ordered), key=version_key) == ordered
    # Leading zeros do not matter, as in dpkg.
    assert version_key("1.01") == version_key("1.1")


def _bzimage(path: Path, release: str) -> None:
    """A file with just enough of an x86 boot header for the version string."""
    data = bytearray(0x1000)
    data[0x202:0x206] = b"HdrS"
    text_at = 0x600
    struct.pack_into("<H", data, 0x20E, text_at - 0x200)
    text = f"{release} (builder@example) #1 SMP".encode() + b"\0"
    data[text_at : text_at + len(text)] = text
    path.write_bytes(bytes(data))


def _install(boot: Path, mods: Path, version: str, *, modules: bool = True) -> None:
    boot.mkdir(exist_ok=True)
    _bzimage(boot / f"vmlinuz-{version}", version)
    (boot / f"config-{version}").write_text(f'CONFIG_LOCALVERSION="-{version}"\nCONFIG_X=y\n')
    (boot / f"System.map-{version}").write_text("")
    if modules:
        (mods / version).mkdir(parents=True)
        (mods / version / "modules.dep").write_text("")


@pytest.fixture
def machine(tmp_path: Path) -> tuple[Path, Path]:
    boot, mods = tmp_path / "boot", tmp_path / "modules"
    mods.mkdir()
    _install(boot, mods, "6.1.0-9-amd64")
    _install(boot, mods, "6.1.0-56-amd64")
    _install(boot, mods, "6.2.0-1-amd64", modules=False)
    (boot / "vmlinuz").symlink_to("vmlinuz-6.1.0-56-amd64")
    (boot / "vmlinuz-6.0.0-1-amd64.old").write_bytes(b"")
    return boot, mods


def test_find_kernels_sorted_with_files(machine: tuple[Path, Path]) -> None:
    boot, mods = machine
    kernels = find_kernels(boot, mods)
    assert [k.version for k in kernels] == ["6.1.0-9-amd64", "6.1.0-56-amd64", "6.2.0-1-amd64"]
    k = kernels[1]
    assert k.image == boot / "vmlinuz-6.1.0-56-amd64"
    assert k.config == boot / "config-6.1.0-56-amd64"
    assert k.system_map == boot / "System.map-6.1.0-56-amd64"
    assert k.modules_dir == mods / "6.1.0-56-amd64"
    assert kernels[2].modules_dir is None


def test_auto_prefers_running_kernel(machine: tuple[Path, Path]) -> None:
    boot, mods = machine
    k = choose_kernel("auto", boot_dir=boot, modules_root=mods, running="6.1.0-9-amd64")
    assert k.version == "6.1.0-9-amd64"
    assert "running kernel" in k.reason


def test_auto_without_running_image_takes_newest_with_modules(machine: tuple[Path, Path]) -> None:
    boot, mods = machine
    k = choose_kernel("auto", boot_dir=boot, modules_root=mods, running="6.18.4-vm")
    # 6.2.0-1 is newer but has no modules directory.
    assert k.version == "6.1.0-56-amd64"
    assert "6.18.4-vm has no image" in k.reason


def test_auto_with_nothing_installed_says_what_to_install(tmp_path: Path) -> None:
    (tmp_path / "boot").mkdir()
    with pytest.raises(MissingError) as err:
        choose_kernel("auto", boot_dir=tmp_path / "boot", modules_root=tmp_path, running="6.18")
    assert "apt-get install linux-image-amd64" in str(err.value)
    assert "6.18" in str(err.value)


def test_version_spec(machine: tuple[Path, Path]) -> None:
    boot, mods = machine
    assert choose_kernel("6.1.0-9-amd64", boot_dir=boot, modules_root=mods).version == (
        "6.1.0-9-amd64"
    )
    with pytest.raises(MissingError) as err:
        choose_kernel("7.0.0-1-amd64", boot_dir=boot, modules_root=mods)
    message = str(err.value)
    assert "7.0.0-1-amd64" in message
    assert "6.1.0-56-amd64" in message  # what was found is listed
    assert "apt-get install linux-image-amd64" in message


def test_path_spec_reads_version_from_header(machine: tuple[Path, Path], tmp_path: Path) -> None:
    boot, mods = machine
    image = tmp_path / "bzImage"  # the name says nothing: the header does
    _bzimage(image, "6.1.0-56-amd64")
    k = choose_kernel(str(image), boot_dir=boot, modules_root=mods)
    assert k.version == "6.1.0-56-amd64"
    assert k.image == image
    assert k.modules_dir == mods / "6.1.0-56-amd64"
    assert k.config == boot / "config-6.1.0-56-amd64"


def test_path_spec_falls_back_to_file_name(machine: tuple[Path, Path], tmp_path: Path) -> None:
    boot, mods = machine
    image = tmp_path / "vmlinuz-6.1.0-9-amd64"
    image.write_bytes(b"\0" * 1024)  # no boot header
    assert image_version(image) is None
    assert choose_kernel(str(image), boot_dir=boot, modules_root=mods).version == "6.1.0-9-amd64"


def test_path_spec_errors(machine: tuple[Path, Path], tmp_path: Path) -> None:
    boot, mods = machine
    with pytest.raises(MissingError, match="no such file"):
        choose_kernel(str(tmp_path / "nope"), boot_dir=boot, modules_root=mods)
    blob = tmp_path / "blob"
    blob.write_bytes(b"\0" * 1024)
    with pytest.raises(MissingError, match="Cannot tell the version"):
        choose_kernel(str(blob), boot_dir=boot, modules_root=mods)


def test_kernel_config(machine: tuple[Path, Path]) -> None:
    boot, mods = machine
    k = choose_kernel("6.1.0-9-amd64", boot_dir=boot, modules_root=mods)
    config = kernel_config(k)
    assert config["CONFIG_X"] == "y"
    assert config["CONFIG_LOCALVERSION"] == "-6.1.0-9-amd64"


def test_parse_kernel_config() -> None:
    text = (
        "# comment\nCONFIG_RD_ZSTD=y\nCONFIG_ISO9660_FS=m\n# CONFIG_RD_LZ4 is not set\n"
        'CONFIG_CMDLINE="a \\"b\\""\nCONFIG_HZ=250\n'
    )
    config = parse_kernel_config(text)
    assert config == {
        "CONFIG_RD_ZSTD": "y",
        "CONFIG_ISO9660_FS": "m",
        "CONFIG_CMDLINE": 'a "b"',
        "CONFIG_HZ": "250",
    }


def test_choose_once_keeps_the_kernel_or_the_reason(machine: tuple[Path, Path]) -> None:
    boot, mods = machine
    found = choose_once("6.1.0-9-amd64", boot_dir=boot, modules_root=mods)
    assert found.version == "6.1.0-9-amd64"
    assert found.kernel().image == boot / "vmlinuz-6.1.0-9-amd64"
    missing = choose_once("7.0.0-1-amd64", boot_dir=boot, modules_root=mods)
    assert missing.version == "" and missing.chosen is None
    with pytest.raises(MissingError, match=r"7\.0\.0-1-amd64"):
        missing.kernel()
