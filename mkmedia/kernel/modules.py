"""Choose the kernel modules (and their firmware) that go into the rescue system.

`select_modules(kernel, requests)` turns a MODULES list into a closed set of module files:

- policy words: `loaded` (what this host uses now, see hostdrivers.py), `storage`,
  `network` and `storage+network` (whole driver classes of the chosen kernel, decided by the
  module's path, see STORAGE_NETWORK_CLASSES), `all` (every module);
- anything else is a module name or alias ("dm-crypt", "fs-ext4") or a glob over module
  names ("dm-*"); '-' and '_' are the same.

A base set (BASE_MODULES, a parameter) is always added, then the closure over modules.dep,
soft and weak dependencies. Firmware named by the chosen modules is looked up under
/lib/firmware; `install_modules` copies the result into a rescue tree and runs depmod there.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mkmedia.kernel.choice import Kernel
from mkmedia.kernel.firmware import FirmwareFile, find_firmware
from mkmedia.kernel.hostdrivers import host_drivers
from mkmedia.kernel.modindex import ModuleIndex, has_glob
from mkmedia.kernel.modinfo import module_firmware
from rescue_runtime import atomic
from rescue_runtime.errors import ConfigError, MissingError
from rescue_runtime.run import require, run

log = logging.getLogger("mkmedia.modules")

# What the rescue system itself needs whatever the policy: its boot medium (CD, USB stick,
# QEMU virtio), a network for DHCP/ssh, and the storage layers recovery rebuilds. Names that
# are built into the chosen kernel are simply satisfied.
BASE_MODULES: tuple[str, ...] = (
    # QEMU/KVM guests (the test machines) and cloud VMs
    "virtio_pci", "virtio_blk", "virtio_scsi", "virtio_net", "virtio_console",
    # local disks and the boot medium
    "nvme", "ahci", "sd_mod", "sr_mod", "cdrom", "isofs",
    "usb_storage", "uas", "xhci_pci", "ehci_pci", "usbhid", "hid_generic",
    "vfat", "nls_cp437", "nls_iso8859_1", "nls_utf8", "efivarfs",
    # the storage stack recovery recreates
    "dm_mod", "dm_crypt", "md_mod", "raid0", "raid1", "raid10", "raid456",
    "ext4", "xfs", "btrfs", "loop", "squashfs", "overlay",
    # networking basics for DHCP
    "af_packet", "e1000", "e1000e",
)  # fmt: skip

# Driver classes by the module's path below kernel/ (fnmatch: '*' also matches '/').
# `storage` is everything needed to reach and rebuild disks and to type at a console;
# `network` is everything needed to reach a backup server. Paths not listed (sound, GPU,
# media, wireless, bluetooth, infiniband, ...) are never taken by these policies, though a
# listed module may still pull one in as a hard dependency.
STORAGE_NETWORK_CLASSES: dict[str, tuple[tuple[str, str], ...]] = {
    "storage": (
        ("drivers/ata/*", "SATA/PATA controllers (ahci, ata_piix, ...)"),
        ("drivers/scsi/*", "SCSI core, disks, CD, tape (sd_mod, sr_mod, st), HBAs, RAID HBAs"),
        ("drivers/message/fusion/*", "LSI MPT HBAs (VMware's emulated SCSI)"),
        ("drivers/nvme/host/*", "NVMe"),
        ("drivers/nvme/common/*", "NVMe shared code"),
        ("drivers/pci/controller/vmd.ko*", "Intel VMD (NVMe behind Intel RST)"),
        ("drivers/md/*", "MD RAID, device-mapper (LVM, LUKS, multipath), bcache"),
        ("drivers/block/*", "loop, nbd, virtio_blk, xen-blkfront, rbd, drbd, zram"),
        ("drivers/cdrom/*", "CD-ROM core"),
        ("drivers/virtio/*", "virtio bus and PCI transport"),
        ("drivers/hv/*", "Hyper-V VMBus"),
        ("drivers/nvdimm/*", "persistent memory"),
        ("drivers/mmc/*", "SD/MMC/eMMC"),
        ("drivers/memstick/*", "Memory Stick readers"),
        ("drivers/usb/host/*", "USB host controllers (for USB disks and keyboards)"),
        ("drivers/usb/storage/*", "USB mass storage and UAS"),
        ("drivers/usb/core/*", "USB core"),
        ("drivers/usb/common/*", "USB shared code"),
        ("fs/*", "every file system, including NFS/CIFS targets, and NLS code pages"),
        ("crypto/*", "crypto algorithms (LUKS, btrfs checksums)"),
        ("arch/*/crypto/*", "accelerated crypto (aesni, crc32c-intel)"),
        ("lib/*", "CRC, RAID6, compression libraries"),
        ("block/*", "block layer extras (partition types, I/O schedulers)"),
        ("drivers/input/keyboard/*", "keyboards"),
        ("drivers/input/serio/*", "PS/2 ports"),
        ("drivers/hid/hid.ko*", "HID core"),
        ("drivers/hid/hid-generic.ko*", "generic HID keyboards"),
        ("drivers/hid/hid-hyperv.ko*", "Hyper-V keyboard"),
        ("drivers/hid/usbhid/*", "USB keyboards"),
        ("drivers/char/virtio_console.ko*", "virtio console"),
    ),
    "network": (
        ("drivers/net/ethernet/*", "wired NICs"),
        ("drivers/net/*virtio*", "virtio NIC"),
        ("drivers/net/vmxnet3/*", "VMware NIC"),
        ("drivers/net/hyperv/*", "Hyper-V NIC"),
        ("drivers/net/xen-netfront.ko*", "Xen NIC"),
        ("drivers/net/usb/*", "USB Ethernet adapters"),
        ("drivers/net/phy/*", "Ethernet PHYs"),
        ("drivers/net/mdio/*", "MDIO buses"),
        ("drivers/net/pcs/*", "PCS layers"),
        ("drivers/net/mii.ko*", "MII"),
        ("drivers/net/mdio.ko*", "MDIO"),
        ("drivers/net/net_failover.ko*", "failover NICs (virtio standby)"),
        ("drivers/net/bonding/*", "bonding"),
        ("drivers/net/team/*", "teaming"),
        ("drivers/net/macvlan.ko*", "macvlan"),
        ("drivers/net/tun.ko*", "tun/tap"),
        ("drivers/net/dummy.ko*", "dummy"),
        ("drivers/net/veth.ko*", "veth"),
        ("drivers/ptp/*", "PTP clocks that NIC drivers need"),
        ("drivers/pps/*", "PPS that PTP needs"),
        ("drivers/dca/*", "DCA (ixgbe, igb)"),
        ("net/8021q/*", "VLANs"),
        ("net/bridge/bridge.ko*", "bridges"),
        ("net/packet/*", "AF_PACKET for DHCP clients"),
        ("net/ipv6/ipv6.ko*", "IPv6"),
        ("net/sunrpc/*", "NFS transport"),
        ("net/dns_resolver/*", "CIFS/NFS name resolution"),
        ("net/9p/*", "9P file sharing"),
    ),
}
# Matched paths that are still left out: servers and RDMA transports (they pull in the
# InfiniBand stack), SCSI target mode, tests.
STORAGE_NETWORK_EXCLUDE: tuple[str, ...] = (
    "fs/nfsd/*",  # NFS server
    "fs/smb/server/*",  # SMB server (ksmbd)
    "drivers/nvme/host/nvme-rdma.ko*",
    "net/sunrpc/xprtrdma/*",
    "net/9p/9pnet_rdma.ko*",
    "drivers/scsi/*/tcm_*",  # target-mode HBA drivers (need the SCSI target core)
    "*/test_*",
    "*/*_test.ko*",
    "*/*-test.ko*",
)

POLICY_WORDS = ("loaded", "storage", "network", "storage+network", "all")


@dataclass(frozen=True)
class Module:
    """One module file of the selection."""

    name: str
    relpath: str  # relative to the modules directory, e.g. kernel/drivers/md/dm-crypt.ko
    size: int


@dataclass(frozen=True)
class NotFound:
    """A requested name the chosen kernel has neither as a module nor built in."""

    name: str
    why: str


@dataclass
class ModuleSelection:
    """The result of `select_modules`: what `install_modules` puts into a rescue tree."""

    version: str
    modules_dir: Path
    modules: list[Module] = field(default_factory=list)
    builtin: list[str] = field(default_factory=list)  # requested names that are built in
    not_found: list[NotFound] = field(default_factory=list)
    firmware: list[FirmwareFile] = field(default_factory=list)  # present, to be copied
    firmware_missing: list[tuple[str, str]] = field(default_factory=list)  # (file, wanted by)
    firmware_root: Path = Path("/lib/firmware")

    @property
    def total_size(self) -> int:
        """Bytes of module files (as stored, compressed or not)."""
        return sum(m.size for m in self.modules)

    @property
    def firmware_size(self) -> int:
        return sum(f.size for f in self.firmware)

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.modules]

    def summary(self) -> str:
        return (
            f"{len(self.modules)} modules of kernel {self.version} "
            f"({self.total_size / 1e6:.1f} MB), {len(self.firmware)} firmware files "
            f"({self.firmware_size / 1e6:.1f} MB), {len(self.firmware_missing)} firmware "
            f"files not on this machine, {len(self.not_found)} names not found"
        )


def class_modules(
    index: ModuleIndex,
    classes: Iterable[str],
    table: dict[str, tuple[tuple[str, str], ...]] = STORAGE_NETWORK_CLASSES,
    exclude: Sequence[str] = STORAGE_NETWORK_EXCLUDE,
) -> list[str]:
    """Module names whose path below kernel/ matches one of the classes' patterns."""
    patterns = [pat for cls in classes for pat, _ in table[cls]]
    chosen = []
    for name, relpath in index.paths.items():
        if not relpath.startswith("kernel/"):
            continue  # extra/ and updates/ hold out-of-tree modules: name them explicitly
        sub = relpath[len("kernel/") :]
        if any(fnmatch.fnmatchcase(sub, p) for p in patterns) and not any(
            fnmatch.fnmatchcase(sub, x) for x in exclude
        ):
            chosen.append(name)
    return sorted(chosen)


def _modules_dir(kernel: Kernel | str | os.PathLike[str]) -> Path:
    if isinstance(kernel, Kernel):
        if kernel.modules_dir is None:
            raise MissingError(
                f"Kernel {kernel.version} has no modules directory, so no modules can be put "
                "into the rescue system.",
                hint="Install the kernel's modules package, or set MODULES to an empty list.",
            )
        return kernel.modules_dir
    return Path(kernel)


def select_modules(
    kernel: Kernel | str | os.PathLike[str],
    requests: Iterable[str] = ("loaded",),
    *,
    base: Iterable[str] = BASE_MODULES,
    firmware: Iterable[str] = (),
    firmware_root: str | os.PathLike[str] = "/lib/firmware",
    sys_root: str | os.PathLike[str] = "/sys",
    proc_root: str | os.PathLike[str] = "/proc",
    index: ModuleIndex | None = None,
) -> ModuleSelection:
    """Resolve MODULES (`requests`) plus `base` to a closed set of module files and firmware.

    `kernel` is a Kernel or its modules directory. `firmware` adds FIRMWARE entries (file
    names or globs relative to `firmware_root`). Names the kernel lacks are collected in
    `not_found`, never raised: the running kernel may differ from the chosen one.
    """
    mdir = _modules_dir(kernel)
    index = index or ModuleIndex.load(mdir)
    wanted: set[str] = set()
    builtin: set[str] = set()
    not_found: list[NotFound] = []

    def want(name: str, why: str, *, report: bool = True) -> None:
        res = index.resolve(name)
        wanted.update(res.modules)
        if not res.modules:
            builtin.update(res.builtin)
        if not res.found and report:
            not_found.append(NotFound(name, why))

    for request in requests:
        word = request.strip()
        if not word:
            continue
        if word == "all":
            wanted.update(index.paths)
        elif word == "loaded":
            for item in host_drivers(sys_root, proc_root):
                if item.kind == "fs":
                    # The module is named after the type, or carries the alias fs-TYPE.
                    alias = f"fs-{item.name}"
                    use_alias = not index.resolve(item.name).found and index.resolve(alias).found
                    want(alias if use_alias else item.name, item.why)
                else:
                    want(item.name, item.why, report=item.kind == "module")
        elif all(part in STORAGE_NETWORK_CLASSES for part in word.split("+")):
            wanted.update(class_modules(index, word.split("+")))
        elif has_glob(word):
            mods, has_builtin = index.match(word)
            wanted.update(mods)
            if not mods and not has_builtin:
                not_found.append(NotFound(word, "MODULES pattern matches no module"))
        elif "+" in word:
            raise ConfigError(
                f"MODULES entry {word!r} is not a known policy; policies are "
                f"{', '.join(POLICY_WORDS)}, anything else is a module name, alias or glob.",
                hint="Fix the MODULES list of the recipe.",
            )
        else:
            want(word, "named in MODULES")
    for name in base:
        want(name, "in the base module set")

    closure, unresolved = index.closure(wanted)
    for soft, by in unresolved:
        log.debug("soft dependency %s of %s is not in kernel %s", soft, by, index.version)
    modules = [
        Module(name, index.paths[name], (mdir / index.paths[name]).stat().st_size)
        for name in sorted(closure, key=lambda n: index.paths[n])
    ]
    selection = ModuleSelection(
        version=index.version,
        modules_dir=mdir,
        modules=modules,
        builtin=sorted(builtin),
        not_found=_dedupe(not_found),
        firmware_root=Path(firmware_root),
    )
    _add_firmware(selection, firmware)
    log.info("module selection: %s", selection.summary())
    return selection


def _dedupe(items: list[NotFound]) -> list[NotFound]:
    seen: set[str] = set()
    out = []
    for item in items:
        if item.name not in seen:
            seen.add(item.name)
            out.append(item)
    return out


def _add_firmware(selection: ModuleSelection, extra: Iterable[str]) -> None:
    requests: list[tuple[str, str]] = []
    for mod in selection.modules:
        for fw in module_firmware(selection.modules_dir / mod.relpath):
            requests.append((fw, mod.name))
    requests.extend((name, "FIRMWARE") for name in extra)
    found, missing = find_firmware(requests, selection.firmware_root, selection.version)
    selection.firmware = found
    selection.firmware_missing = missing


# --- installing into a rescue tree ----------------------------------------------------------

# Index files copied from the kernel; depmod regenerates the rest from the module files.
COPIED_INDEX_FILES = ("modules.order", "modules.builtin", "modules.builtin.modinfo")


def tree_path(tree: str | os.PathLike[str], relpath: str) -> Path:
    """`relpath` inside `tree`, following symlinks that already exist *inside the tree*.

    A merged-/usr tree has lib -> usr/lib; writing TREE/lib/modules must land in
    TREE/usr/lib/modules. Absolute link targets are taken relative to the tree, never to
    the host's root.
    """
    root = Path(tree)
    parts = [p for p in relpath.split("/") if p not in ("", ".")]
    current = root
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            current = current.parent if current != root else root
            continue
        candidate = current / part
        if candidate.is_symlink():
            hops += 1
            if hops > 40:
                raise MissingError(f"Too many symlinks below {root} resolving {relpath!r}.")
            target = os.readlink(candidate)
            if target.startswith("/"):
                current = root
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            continue
        current = candidate
    return current


def _copy(source: Path, dest: Path) -> None:
    # Write to a temporary name and rename, so a tree never holds half a file.
    with atomic.atomic_path(dest, durable=False) as tmp:
        shutil.copy2(source, tmp)


def _symlink(text: str, dest: Path) -> None:
    with atomic.atomic_path(dest, durable=False) as tmp:
        os.symlink(text, tmp)


def install_modules(selection: ModuleSelection, tree: str | os.PathLike[str]) -> Path:
    """Copy the selection into TREE/lib/modules/VERSION and TREE/lib/firmware, then depmod.

    Module files keep their relative paths (and compression); modules.order, modules.builtin
    and modules.builtin.modinfo are copied so modprobe in the rescue system knows the builtin
    modules; `depmod -b TREE VERSION` writes the rest. Returns the modules directory in the
    tree.
    """
    root = Path(tree)
    dest = tree_path(root, f"lib/modules/{selection.version}")
    # depmod -b follows TREE/lib/modules through the host's file system: an absolute
    # lib -> /usr/lib link would send it to the host's modules.
    through_os = Path(os.path.realpath(root / "lib" / "modules" / selection.version))
    if through_os != Path(os.path.realpath(dest)):
        raise ConfigError(
            f"The rescue tree {root} has a symlink on the way to lib/modules that points "
            f"outside the tree ({root / 'lib'} -> {os.readlink(root / 'lib')}), so depmod "
            "would write into the host.",
            hint="Make the tree's /lib link relative (lib -> usr/lib).",
        )
    for mod in selection.modules:
        _copy(selection.modules_dir / mod.relpath, dest / mod.relpath)
    for name in COPIED_INDEX_FILES:
        if (selection.modules_dir / name).is_file():
            _copy(selection.modules_dir / name, dest / name)
    run(
        [require("depmod", package="kmod"), "-b", str(root), selection.version],
        what=f"indexing the rescue system's modules for kernel {selection.version}",
    )
    install_firmware(selection, root)
    return dest


def install_firmware(selection: ModuleSelection, tree: str | os.PathLike[str]) -> Path:
    """Copy the selection's firmware files (and symlinks) into TREE/lib/firmware."""
    dest = tree_path(tree, "lib/firmware")
    for fw in selection.firmware:
        if fw.link is not None:
            _symlink(fw.link, dest / fw.relpath)
        else:
            _copy(fw.source, dest / fw.relpath)
    return dest
