"""Module index, closure, policies, firmware and the modinfo parser on a crafted modules dir."""

from __future__ import annotations

import gzip
import lzma
import os
import struct
from pathlib import Path

import pytest
import zstandard

from mkmedia.kernel.firmware import find_firmware
from mkmedia.kernel.modindex import ModuleIndex, alias_normalize, module_name_of
from mkmedia.kernel.modinfo import ModinfoError, modinfo, module_firmware
from mkmedia.kernel.modules import select_modules, tree_path
from rescue_runtime.errors import ConfigError

VERSION = "9.9.9-test"


def elf_module(modinfo_pairs: list[str], *, is64: bool = True, little: bool = True) -> bytes:
    """A minimal ELF relocatable object with a .modinfo section (what modinfo reads)."""
    e = "<" if little else ">"
    modinfo_data = b"".join(p.encode() + b"\0" for p in modinfo_pairs)
    shstrtab = b"\0.text\0.modinfo\0.shstrtab\0"
    ehsize, shentsize = (64, 64) if is64 else (52, 40)
    modinfo_off = ehsize
    shstr_off = modinfo_off + len(modinfo_data)
    shoff = shstr_off + len(shstrtab)
    shoff += (-shoff) % 8
    sections = [
        (0, 0, 0, 0),  # null section
        (1, 1, 0, 0),  # .text, empty
        (7, 1, modinfo_off, len(modinfo_data)),  # .modinfo (PROGBITS)
        (16, 3, shstr_off, len(shstrtab)),  # .shstrtab (STRTAB)
    ]
    ident = b"\x7fELF" + bytes([2 if is64 else 1, 1 if little else 2, 1]) + b"\0" * 9
    if is64:
        header = ident + struct.pack(
            e + "HHIQQQIHHHHHH", 1, 62, 1, 0, 0, shoff, 0, ehsize, 0, 0, shentsize, 4, 3
        )
        table = b"".join(
            struct.pack(e + "IIQQQQIIQQ", name, typ, 0, 0, off, size, 0, 0, 1, 0)
            for name, typ, off, size in sections
        )
    else:
        header = ident + struct.pack(
            e + "HHIIIIIHHHHHH", 1, 3, 1, 0, 0, shoff, 0, ehsize, 0, 0, shentsize, 4, 3
        )
        table = b"".join(
            struct.pack(e + "IIIIIIIIII", name, typ, 0, 0, off, size, 0, 0, 1, 0)
            for name, typ, off, size in sections
        )
    body = header + modinfo_data + shstrtab
    return body + b"\0" * (shoff - len(body)) + table


# path below the modules dir -> firmware it declares
MODULES = {
    "kernel/drivers/md/dm-mod.ko": [],
    "kernel/drivers/md/dm-crypt.ko": [],
    "kernel/drivers/md/dm-raid.ko": [],
    "kernel/fs/ext4/ext4.ko": [],
    "kernel/fs/jbd2/jbd2.ko": [],
    "kernel/lib/crc16.ko": [],
    "kernel/crypto/crc32c_generic.ko.xz": [],
    "kernel/crypto/ecb.ko.zst": [],
    "kernel/crypto/xts.ko.gz": [],
    "kernel/drivers/net/ethernet/intel/e1000/e1000.ko": ["e1000/fw.bin", "e1000/absent.bin"],
    "kernel/drivers/net/ethernet/acme/acme-nic.ko": ["acme/link.bin"],
    "kernel/drivers/gpu/drm/drm.ko": ["drm/gpu.bin"],
    "kernel/sound/core/snd.ko": [],
    "kernel/drivers/hid/hid-prodikeys.ko": [],
    "kernel/drivers/usb/storage/usb-storage.ko": [],
    "kernel/drivers/ipmi/ipmi_msghandler.ko": [],
    "kernel/drivers/ipmi/ipmi_devintf.ko": [],
}
DEP = """\
kernel/drivers/md/dm-mod.ko:
kernel/drivers/md/dm-crypt.ko: kernel/drivers/md/dm-mod.ko
kernel/drivers/md/dm-raid.ko: kernel/drivers/md/dm-mod.ko
kernel/fs/ext4/ext4.ko: kernel/fs/jbd2/jbd2.ko kernel/lib/crc16.ko
kernel/fs/jbd2/jbd2.ko:
kernel/lib/crc16.ko:
kernel/crypto/crc32c_generic.ko.xz:
kernel/crypto/ecb.ko.zst:
kernel/crypto/xts.ko.gz:
kernel/drivers/net/ethernet/intel/e1000/e1000.ko:
kernel/drivers/net/ethernet/acme/acme-nic.ko:
kernel/drivers/gpu/drm/drm.ko:
kernel/sound/core/snd.ko:
kernel/drivers/hid/hid-prodikeys.ko: kernel/sound/core/snd.ko
kernel/drivers/usb/storage/usb-storage.ko:
kernel/drivers/ipmi/ipmi_msghandler.ko:
kernel/drivers/ipmi/ipmi_devintf.ko: kernel/drivers/ipmi/ipmi_msghandler.ko
"""
SOFTDEP = """\
# Soft dependencies extracted from modules themselves.
softdep ext4 pre: crypto-crc32c
softdep xts pre: ecb
softdep dm_crypt ignored-before-pre
softdep ipmi_msghandler post: ipmi_devintf
softdep e1000 pre: no-such-helper
"""
ALIAS = """\
# Aliases extracted from modules themselves.
alias crypto-crc32c crc32c_generic
alias fs-ext4 ext4
alias fs-ext3 ext4
alias pci:v00008086d0000100Esv*sd*bc*sc*i* e1000
alias usb:v*p*d*dc*dsc*dp*ic08isc06ip50in* usb_storage
alias dm-crypt-alias dm_crypt
"""
BUILTIN = "kernel/drivers/block/virtio_blk.ko\nkernel/net/packet/af_packet.ko\n"
BUILTIN_MODINFO = (
    b"virtio_blk.file=drivers/block/virtio_blk\0virtio_blk.alias=virtio:d00000002v*\0"
    b"af_packet.alias=net-pf-17\0printk.parm=time:Show timing\0"
)


def _compress(name: str, data: bytes) -> bytes:
    if name.endswith(".xz"):
        return lzma.compress(data, format=lzma.FORMAT_XZ)
    if name.endswith(".zst"):
        return zstandard.ZstdCompressor().compress(data)
    if name.endswith(".gz"):
        return gzip.compress(data)
    return data


@pytest.fixture
def moddir(tmp_path: Path) -> Path:
    mdir = tmp_path / "lib" / "modules" / VERSION
    for rel, firmware in MODULES.items():
        path = mdir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        name = module_name_of(rel)
        pairs = [f"firmware={f}" for f in firmware] + [f"name={name}", "license=GPL"]
        path.write_bytes(_compress(rel, elf_module(pairs)))
    (mdir / "modules.dep").write_text(DEP)
    (mdir / "modules.softdep").write_text(SOFTDEP)
    (mdir / "modules.alias").write_text(ALIAS)
    (mdir / "modules.builtin").write_text(BUILTIN)
    (mdir / "modules.builtin.modinfo").write_bytes(BUILTIN_MODINFO)
    (mdir / "modules.order").write_text("".join(r + "\n" for r in MODULES))
    return mdir


@pytest.fixture
def fwroot(tmp_path: Path) -> Path:
    root = tmp_path / "firmware"
    (root / "e1000").mkdir(parents=True)
    (root / "e1000" / "fw.bin.zst").write_bytes(b"compressed firmware")
    (root / "acme" / "v2").mkdir(parents=True)
    (root / "acme" / "v2" / "link.bin").write_bytes(b"acme firmware")
    (root / "acme" / "link.bin").symlink_to("v2/link.bin")
    (root / "extra").mkdir()
    (root / "extra" / "a.bin").write_bytes(b"a")
    (root / "extra" / "b.ucode").write_bytes(b"bb")
    return root


# --- names and parsing ------------------------------------------------------------------------


def test_names() -> None:
    assert module_name_of("kernel/drivers/md/dm-mod.ko") == "dm_mod"
    assert module_name_of("kernel/crypto/crc32c_generic.ko.xz") == "crc32c_generic"
    assert module_name_of("kernel/fs/x-y.ko.zst") == "x_y"
    assert alias_normalize("fs-ext4") == "fs_ext4"
    assert alias_normalize("pci:v[a-f]*-x") == "pci:v[a-f]*_x"


def test_index_parses_dep_softdep_alias_builtin(moddir: Path) -> None:
    index = ModuleIndex.load(moddir)
    assert index.version == VERSION
    assert index.paths["crc32c_generic"] == "kernel/crypto/crc32c_generic.ko.xz"
    assert index.deps["ext4"] == ["jbd2", "crc16"]
    assert index.softdeps["ext4"] == (["crypto-crc32c"], [])
    assert index.softdeps["ipmi_msghandler"] == ([], ["ipmi_devintf"])
    # Names before pre:/post: are ignored, as kmod does.
    assert index.softdeps["dm_crypt"] == ([], [])
    assert index.builtin == {"virtio_blk", "af_packet"}


def test_resolve(moddir: Path) -> None:
    index = ModuleIndex.load(moddir)
    assert index.resolve("dm-crypt").modules == ("dm_crypt",)
    assert index.resolve("dm_crypt").modules == ("dm_crypt",)
    assert index.resolve("dm-crypt-alias").modules == ("dm_crypt",)
    assert index.resolve("dm_crypt_alias").modules == ("dm_crypt",)
    assert index.resolve("fs-ext4").modules == ("ext4",)
    assert index.resolve("pci:v00008086d0000100Esv00001AF4sd00001100bc02sc00i00").modules == (
        "e1000",
    )
    assert index.resolve("usb:v0781p5567d0100dc00dsc00dp00ic08isc06ip50in00").modules == (
        "usb_storage",
    )
    virtio = index.resolve("virtio-blk")
    assert virtio.builtin and not virtio.modules
    assert index.resolve("virtio:d00000002v00001AF4").builtin  # builtin module's alias
    assert index.resolve("net-pf-17").builtin
    assert not index.resolve("printk").found  # a builtin parameter prefix is no module
    assert not index.resolve("nonexistent").found


def test_closure_follows_dep_and_softdeps(moddir: Path) -> None:
    index = ModuleIndex.load(moddir)
    mods, unresolved = index.closure(["dm-crypt"])
    assert mods == {"dm_crypt", "dm_mod"}
    mods, _ = index.closure(["ext4"])
    # crypto-crc32c is a pre: softdep through an alias.
    assert mods == {"ext4", "jbd2", "crc16", "crc32c_generic"}
    mods, _ = index.closure(["xts"])
    assert mods == {"xts", "ecb"}
    mods, _ = index.closure(["ipmi_msghandler"])
    assert mods == {"ipmi_msghandler", "ipmi_devintf"}  # post: softdep
    mods, unresolved = index.closure(["e1000"])
    assert mods == {"e1000"}
    assert unresolved == [("no-such-helper", "e1000")]


# --- selection ---------------------------------------------------------------------------------


def test_explicit_names_globs_builtin_and_not_found(moddir: Path, fwroot: Path) -> None:
    sel = select_modules(
        moddir, ["virtio-blk", "dm-*", "ext4", "nonexistent", "zzz*"], base=(), firmware_root=fwroot
    )
    assert sel.names == ["crc32c_generic", "dm_crypt", "dm_mod", "dm_raid", "ext4", "jbd2", "crc16"]
    assert sel.builtin == ["virtio_blk"]
    assert [n.name for n in sel.not_found] == ["nonexistent", "zzz*"]
    by_name = {m.name: m for m in sel.modules}
    # Compressed modules are kept as they are.
    assert by_name["crc32c_generic"].relpath.endswith(".ko.xz")
    assert sel.total_size == sum((moddir / m.relpath).stat().st_size for m in sel.modules)


def test_base_set_is_a_parameter(moddir: Path, fwroot: Path) -> None:
    sel = select_modules(moddir, [], base=["dm_crypt", "af_packet", "gone"], firmware_root=fwroot)
    assert sel.names == ["dm_crypt", "dm_mod"]
    assert sel.builtin == ["af_packet"]
    assert [n.name for n in sel.not_found] == ["gone"]
    assert select_modules(moddir, [], base=(), firmware_root=fwroot).modules == []


def test_storage_network_policy(moddir: Path, fwroot: Path) -> None:
    names = set(select_modules(moddir, ["storage+network"], base=(), firmware_root=fwroot).names)
    for wanted in ("dm_mod", "dm_crypt", "ext4", "crc32c_generic", "e1000", "usb_storage"):
        assert wanted in names
    for unwanted in ("drm", "snd", "hid_prodikeys", "ipmi_msghandler"):
        assert unwanted not in names
    storage = set(select_modules(moddir, ["storage"], base=(), firmware_root=fwroot).names)
    assert "ext4" in storage and "e1000" not in storage
    network = set(select_modules(moddir, ["network"], base=(), firmware_root=fwroot).names)
    assert network == {"e1000", "acme_nic"}


def test_all_policy_and_bad_policy(moddir: Path, fwroot: Path) -> None:
    sel = select_modules(moddir, ["all"], base=(), firmware_root=fwroot)
    assert len(sel.modules) == len(MODULES)
    with pytest.raises(ConfigError, match="storage\\+graphics"):
        select_modules(moddir, ["storage+graphics"], base=(), firmware_root=fwroot)


def test_firmware_present_missing_links_and_extra(moddir: Path, fwroot: Path) -> None:
    sel = select_modules(
        moddir, ["e1000", "acme-nic"], base=(), firmware=["extra/*.bin", "nothing*"],
        firmware_root=fwroot,
    )  # fmt: skip
    got = {f.relpath: f for f in sel.firmware}
    assert sorted(got) == ["acme/link.bin", "acme/v2/link.bin", "e1000/fw.bin.zst", "extra/a.bin"]
    assert got["acme/link.bin"].link == "v2/link.bin"
    assert got["e1000/fw.bin.zst"].wanted_by == "e1000"
    assert got["e1000/fw.bin.zst"].size == len(b"compressed firmware")
    assert sel.firmware_missing == [("e1000/absent.bin", "e1000"), ("nothing*", "FIRMWARE")]


def test_firmware_search_order(fwroot: Path) -> None:
    (fwroot / "updates").mkdir()
    (fwroot / "updates" / "e1000").mkdir()
    (fwroot / "updates" / "e1000" / "fw.bin").write_bytes(b"newer")
    found, missing = find_firmware([("e1000/fw.bin", "e1000")], fwroot, VERSION)
    assert [f.relpath for f in found] == ["updates/e1000/fw.bin"]
    assert missing == []


# --- the `loaded` policy on a fake sysfs -------------------------------------------------------


def _link(path: Path, target: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(os.path.relpath(target, path.parent))


@pytest.fixture
def fake_host(tmp_path: Path) -> tuple[Path, Path]:
    sys, proc = tmp_path / "sys", tmp_path / "proc"
    pci = sys / "devices" / "pci0000:00"
    # vda: virtio_blk built into the running kernel (no module link) under virtio_pci.
    vblk_pci = pci / "0000:00:02.0"
    vblk = vblk_pci / "virtio1"
    vblk.mkdir(parents=True)
    (vblk / "modalias").write_text("virtio:d00000002v00001AF4\n")
    _link(vblk / "driver", sys / "bus" / "virtio" / "drivers" / "virtio_blk")
    (vblk_pci / "modalias").write_text("pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00\n")
    _link(sys / "block" / "vda" / "device", vblk)
    # eth0: an e1000 with neither driver nor module link (the running kernel lacks it).
    nic = pci / "0000:00:03.0"
    nic.mkdir(parents=True)
    (nic / "modalias").write_text("pci:v00008086d0000100Esv00001AF4sd00001100bc02sc00i00\n")
    _link(sys / "class" / "net" / "eth0" / "device", nic)
    (sys / "class" / "net" / "bond0").mkdir(parents=True)
    (sys / "class" / "net" / "bond0" / "uevent").write_text("DEVTYPE=bond\nINTERFACE=bond0\n")
    # A USB stick whose driver is a loaded module.
    usb = pci / "0000:00:04.0" / "usb1" / "1-1" / "1-1:1.0"
    usb.mkdir(parents=True)
    driver = sys / "bus" / "usb" / "drivers" / "usb-storage"
    _link(usb / "driver", driver)
    _link(driver / "module", sys / "module" / "usb_storage")
    _link(sys / "block" / "sda" / "device", usb)
    # md0 (RAID1) and a LUKS dm device, and a loop device.
    (sys / "block" / "md0" / "md").mkdir(parents=True)
    (sys / "block" / "md0" / "md" / "level").write_text("raid1\n")
    (sys / "block" / "dm-0" / "dm").mkdir(parents=True)
    (sys / "block" / "dm-0" / "dm" / "uuid").write_text("CRYPT-LUKS2-abc-root\n")
    (sys / "block" / "loop0").mkdir(parents=True)
    proc.mkdir()
    (proc / "modules").write_text(
        "dm_raid 16384 0 - Live 0x0\nvendor_thing 16384 0 - Live 0x0 (O)\n"
    )
    (proc / "mounts").write_text(
        "proc /proc proc rw 0 0\n/dev/vda1 / ext4 rw 0 0\n/dev/vda2 /srv xfs rw 0 0\n"
        "/dev/vda3 /old ext3 rw 0 0\n"
    )
    return sys, proc


def test_loaded_policy(moddir: Path, fwroot: Path, fake_host: tuple[Path, Path]) -> None:
    sys, proc = fake_host
    sel = select_modules(
        moddir, ["loaded"], base=(), firmware_root=fwroot, sys_root=sys, proc_root=proc
    )
    names = set(sel.names)
    # loaded now, the NIC by its modalias, usb-storage by its module link, LUKS, ext4 mount
    assert {"dm_raid", "e1000", "usb_storage", "dm_crypt", "dm_mod", "ext4"} <= names
    assert "virtio_blk" in sel.builtin
    missing = {n.name: n.why for n in sel.not_found}
    # Names the chosen kernel lacks are reported, with why they were wanted.
    assert missing.keys() == {"vendor_thing", "md_mod", "raid1", "bonding", "loop", "xfs"}
    assert "md0" in missing["raid1"]
    assert "bond0" in missing["bonding"]
    assert "/srv" in missing["xfs"]  # ext3 is found through its alias fs-ext3
    # A modalias without a module (the virtio PCI function here) is not an error.
    assert not any(n.startswith("pci:") for n in missing)


# --- tree paths ----------------------------------------------------------------------------------


def test_tree_path_follows_links_inside_tree(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "usr" / "lib").mkdir(parents=True)
    (tree / "lib").symlink_to("usr/lib")
    assert tree_path(tree, "lib/modules/x") == tree / "usr" / "lib" / "modules" / "x"
    other = tmp_path / "other"
    (other / "usr" / "lib").mkdir(parents=True)
    (other / "lib").symlink_to("/usr/lib")  # absolute: taken relative to the tree
    assert tree_path(other, "/lib/firmware") == other / "usr" / "lib" / "firmware"
    plain = tmp_path / "plain"
    assert tree_path(plain, "lib/modules") == plain / "lib" / "modules"


# --- the modinfo parser ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("is64", "little", "suffix"),
    [(True, True, ".ko"), (False, False, ".ko"), (True, True, ".ko.xz"),
     (True, True, ".ko.zst"), (False, True, ".ko.gz")],
)  # fmt: skip
def test_modinfo_parser(tmp_path: Path, is64: bool, little: bool, suffix: str) -> None:
    pairs = ["alias=x", "firmware=a/b.bin", "description=A = B", "firmware=c.bin"]
    path = tmp_path / f"m{suffix}"
    path.write_bytes(_compress(path.name, elf_module(pairs, is64=is64, little=little)))
    assert module_firmware(path) == ["a/b.bin", "c.bin"]
    assert ("description", "A = B") in modinfo(path)


def test_modinfo_rejects_non_elf(tmp_path: Path) -> None:
    path = tmp_path / "bad.ko"
    path.write_bytes(b"not an elf file at all")
    with pytest.raises(ModinfoError, match="not an ELF"):
        module_firmware(path)
    truncated = tmp_path / "short.ko"
    truncated.write_bytes(elf_module(["firmware=x"])[:80])
    with pytest.raises(ModinfoError, match="truncated"):
        module_firmware(truncated)
