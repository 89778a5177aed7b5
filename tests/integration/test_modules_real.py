"""The kernel chooser and module resolver against this machine's installed Debian kernel."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from mkmedia.kernel.choice import Kernel, choose_kernel, find_kernels, kernel_config, version_key
from mkmedia.kernel.modindex import ModuleIndex
from mkmedia.kernel.modinfo import modinfo_field, module_firmware
from mkmedia.kernel.modules import ModuleSelection, install_modules, select_modules
from rescue_runtime.errors import MissingError
from rescue_runtime.run import require, run

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def kernel() -> Kernel:
    # linux-image-amd64 is in scripts/host-packages.txt: a machine without it fails here.
    return choose_kernel("auto")


@pytest.fixture(scope="module")
def index(kernel: Kernel) -> ModuleIndex:
    assert kernel.modules_dir is not None
    return ModuleIndex.load(kernel.modules_dir)


@pytest.fixture(scope="module")
def storage_network(kernel: Kernel, index: ModuleIndex) -> ModuleSelection:
    return select_modules(kernel, ["storage+network"], index=index)


def test_auto_picks_an_installed_kernel_and_says_why(kernel: Kernel) -> None:
    running = os.uname().release
    installed = [k for k in find_kernels() if k.modules_dir is not None]
    assert kernel.image.is_file()
    assert kernel.modules_dir is not None and (kernel.modules_dir / "modules.dep").is_file()
    if any(k.version == running for k in installed):
        assert kernel.version == running
        assert "running kernel" in kernel.reason
    else:
        # This machine: a 6.18 VM kernel without image, and Debian's 6.1.0-56-amd64 installed.
        assert kernel.version == installed[-1].version
        assert f"running kernel {running} has no image" in kernel.reason
    assert kernel_config(kernel)["CONFIG_MODULES"] == "y"


def test_bad_specs_explain(kernel: Kernel) -> None:
    with pytest.raises(MissingError) as err:
        choose_kernel("0.0.1-nonexistent")
    assert kernel.version in str(err.value)  # lists what was found
    assert "apt-get install linux-image-amd64" in str(err.value)
    with pytest.raises(MissingError, match="no such file"):
        choose_kernel("/boot/vmlinuz-0.0.1-nonexistent")
    # A path to the real image gives the same kernel, its version read from the bzImage.
    assert choose_kernel(str(kernel.image)).version == kernel.version


def test_version_key_agrees_with_dpkg() -> None:
    rng = random.Random(4)
    alphabet = "0123456789.~+a"
    pairs = []
    for _ in range(60):
        a, b = (rng.choice("0123456789") + "".join(rng.choices(alphabet, k=5)) for _ in "ab")
        pairs.append((a, b))
    for a, b in pairs:
        dpkg_lt = run(["dpkg", "--compare-versions", a, "lt", b], check=False).returncode == 0
        assert (version_key(a) < version_key(b)) == dpkg_lt, (a, b)


def test_dm_crypt_closure(index: ModuleIndex) -> None:
    mods, _ = index.closure(["dm-crypt"])
    assert {"dm_crypt", "dm_mod"} <= mods


def test_storage_network_contents(storage_network: ModuleSelection) -> None:
    names = set(storage_network.names)
    for wanted in (
        "nvme",
        "virtio_blk",
        "virtio_net",
        "e1000",
        "e1000e",
        "ahci",
        "raid1",
        "xfs",
        "ext4",
        "btrfs",
        "dm_crypt",
        "sd_mod",
        "sr_mod",
        "usb_storage",
        "isofs",
        "vfat",
        "mptsas",
        "vmxnet3",
        "megaraid_sas",
        "aesni_intel",
    ):
        assert wanted in names, wanted  # fmt: skip
    for mod in storage_network.modules:
        assert not mod.relpath.startswith(("kernel/sound/", "kernel/drivers/gpu/")), mod.relpath
        assert "/wireless/" not in mod.relpath and "/bluetooth/" not in mod.relpath
    assert storage_network.not_found == []
    assert storage_network.firmware_missing  # NIC firmware: named by modules, mostly absent


def test_loaded_policy_on_this_host(kernel: Kernel, index: ModuleIndex) -> None:
    sel = select_modules(kernel, ["loaded"], base=(), index=index)
    have = set(sel.names) | set(sel.builtin)
    for link in [*Path("/sys/block").glob("*/device/driver"),
                 *Path("/sys/class/net").glob("*/device/driver")]:  # fmt: skip
        driver = Path(os.readlink(link)).name
        res = index.resolve(driver)
        if res.found:  # the chosen kernel has this driver: found through sysfs
            assert (set(res.modules) | set(res.builtin)) & have, driver


def test_install_into_merged_usr_tree(kernel: Kernel, index: ModuleIndex, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "usr" / "lib").mkdir(parents=True)
    (tree / "lib").symlink_to("usr/lib")
    sel = select_modules(kernel, ["dm-crypt"], index=index)
    dest = install_modules(sel, tree)
    assert dest == tree / "usr" / "lib" / "modules" / kernel.version
    assert (dest / "modules.dep.bin").is_file()
    for mod in sel.modules:
        assert (dest / mod.relpath).stat().st_size == mod.size
    modprobe = [require("modprobe"), "-d", tree, "-S", kernel.version, "--show-depends"]
    out = run([*modprobe, "dm_crypt"]).stdout.splitlines()
    assert out, "modprobe printed nothing"
    prefix = f"insmod {tree}/lib/modules/{kernel.version}/"
    assert all(line.startswith(prefix) for line in out), out
    assert any("dm-mod.ko" in line for line in out)
    assert out[-1].split()[1].endswith("dm-crypt.ko")
    # Builtin modules are known to modprobe in the tree (modules.builtin was copied).
    builtin = next(iter(sorted(index.builtin)))
    shown = run([*modprobe, builtin]).stdout
    assert shown.strip() == f"builtin {builtin}"
    for fw in sel.firmware:
        assert (tree / "usr" / "lib" / "firmware" / fw.relpath).exists()


def test_firmware_parser_agrees_with_modinfo(storage_network: ModuleSelection) -> None:
    # About 200 modules: mostly network/SCSI drivers (they name firmware), some of every kind.
    mdir = storage_network.modules_dir
    rng = random.Random(1)
    sample = rng.sample([mdir / m.relpath for m in storage_network.modules], 150)
    everything = sorted(mdir.glob("kernel/**/*.ko*"))
    sample += rng.sample(everything, 50)
    with_firmware = 0
    modinfo = require("modinfo")
    for path in sample:
        expected = run([modinfo, "-F", "firmware", path]).stdout.split()
        assert module_firmware(path) == expected, path
        with_firmware += bool(expected)
    assert with_firmware >= 10  # the sample really exercised the firmware field
    e1000e = next(p for p in everything if p.name.startswith("e1000e.ko"))
    aliases = run([modinfo, "-F", "alias", e1000e]).stdout.split("\n")
    assert modinfo_field(e1000e, "alias") == [a for a in aliases if a]
