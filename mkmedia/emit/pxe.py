"""OUTPUT=PXE: a TFTP tree that boots the rescue system over the network, BIOS and UEFI.

Layout of the tree (the TFTP root; several hosts can share one):

    pxelinux.0, ldlinux.c32, menu.c32, ...   BIOS: PXELINUX (DHCP boot file pxelinux.0)
    pxelinux.cfg/01-aa-bb-cc-dd-ee-ff        this host's menu, by MAC address
    pxelinux.cfg/C0A80005                    the same, by IPv4 address in hex
    pxelinux.cfg/default                     any other client: boot its local disk
    bootx64.efi                              UEFI: GRUB (DHCP boot file bootx64.efi); with
    grubx64.efi, mmx64.efi                   Secure Boot, shim and Debian's signed network GRUB
    grub/grub.cfg-01-aa-bb-..., grub.cfg-C0A80005, grub.cfg   the same three for GRUB
    <prefix>/vmlinuz, <prefix>/initrd        this host's kernel and initrd

GRUB (2.06) looks for grub.cfg-01-<mac> and grub.cfg-<hex IP> below its prefix by itself, as
PXELINUX does below pxelinux.cfg/, when it starts from its prefix; Debian's signed netboot image
reads grub/grub.cfg directly, so that file first turns $net_default_mac into the same name
(by MAC only: GRUB's script cannot write an address in hex). The files shared by all hosts
(boot loaders, `default`) do not depend on the host, so another host's build rewrites them
with the same bytes. Every file
and directory has SOURCE_DATE_EPOCH as its mtime: the same inputs give the same tree.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from mkmedia.emit import Artifact, Emitter, bootmenu, grub, isolinux
from mkmedia.emit.pxenames import client_config_names
from mkmedia.session.epoch import resolve_epoch
from rescue_runtime import atomic
from rescue_runtime.errors import ConfigError, MissingError

PXELINUX_BIN = Path("/usr/lib/PXELINUX/pxelinux.0")
BIOS_BOOTFILE = "pxelinux.0"
UEFI_BOOTFILE = "bootx64.efi"
PXELINUX_CFG = "pxelinux.cfg"
# The signed network GRUB's prefix is /grub; our own image uses the same.
GRUB_DIR = "grub"
FILE_MODE = 0o644
DIR_MODE = 0o755


@dataclass(frozen=True)
class PxeFile:
    """One file of the tree: its bytes, or a file on this machine to copy."""

    path: str  # relative to the TFTP root
    source: Path | None = None
    data: bytes | None = None


def pxelinux_files() -> dict[str, Path]:
    files = {BIOS_BOOTFILE: PXELINUX_BIN}
    files.update({name: isolinux.BIOS_MODULES / name for name in isolinux.MODULES})
    for name, path in files.items():
        if not path.is_file():
            package = "pxelinux" if name == BIOS_BOOTFILE else "syslinux-common"
            raise MissingError(
                f"The PXE boot loader file {path} is missing (needed as {name}).",
                hint=f"Install the Debian package {package}.",
            )
    return files


def uefi_files(secure_boot: bool, work: Path) -> dict[str, Path]:
    """The UEFI boot file (and what shim loads next) by name in the TFTP root."""
    if secure_boot:
        chain = grub.signed_chain(grub.SIGNED_NET_GRUB)
        return {UEFI_BOOTFILE: chain.pop("BOOTX64.EFI"), **chain}
    image = grub.build_grub_efi(
        work / UEFI_BOOTFILE, None, prefix=f"/{GRUB_DIR}", modules=grub.NET_MODULES
    )
    return {UEFI_BOOTFILE: image}


def unknown_client_menu(serial: bootmenu.SerialPort | None, timeout: int) -> bootmenu.BootMenu:
    """What a client without its own file gets: only the local disk (never a stranger's
    rescue system, which could recover the wrong machine)."""
    local = next(kind for kind in bootmenu.ENTRIES if kind.kind == "local")
    return bootmenu.BootMenu(
        title="mkmedia: no rescue system for this machine (its MAC/IP has no file here)",
        entries=(bootmenu.MenuEntry(local.id, local.label, local.kind),),
        default=local.id,
        timeout=timeout,
        serial=serial,
    )


def check_host_dir(name: str) -> None:
    if not name or "/" in name or name.startswith(".") or name in (PXELINUX_CFG, GRUB_DIR):
        raise ConfigError(
            f"The PXE host directory {name!r} (OUTPUT_PREFIX) is not one plain name, or it "
            "clashes with the boot loader directories.",
            hint="Set OUTPUT_PREFIX to the host name (the default).",
        )


def host_config_names(clients: Sequence[str]) -> list[str]:
    """The host's own file names; ConfigError when there is none."""
    names = client_config_names(clients)
    if not names:
        raise ConfigError(
            "OUTPUT=PXE needs the MAC or IPv4 addresses the host boots from, but PXE_CLIENTS "
            "is empty and this machine has no Ethernet interface to take them from.",
            hint="Set PXE_CLIENTS to the host's MAC address (aa:bb:cc:dd:ee:ff).",
        )
    return names


def pxe_files(
    *,
    kernel: Path,
    initrd: Path,
    host_dir: str,
    menu: bootmenu.BootMenu,
    clients: Sequence[str],
    secure_boot: bool,
    work: Path,
) -> list[PxeFile]:
    """Every file of the tree, for one host."""
    check_host_dir(host_dir)
    names = host_config_names(clients)
    for what, path in (("kernel", kernel), ("initrd", initrd)):
        if not path.is_file():
            raise MissingError(f"The {what} {path} for the PXE tree does not exist.")
    if secure_boot:
        grub.require_signed_kernel(kernel)
    paths = {"kernel": f"{host_dir}/vmlinuz", "initrd": f"{host_dir}/initrd"}
    grub_paths = {name: f"/{path}" for name, path in paths.items()}
    unknown = unknown_client_menu(menu.serial, menu.timeout)
    pxelinux_cfg = bootmenu.render("isolinux.cfg.j2", menu=menu, localboot=0, **paths).encode()
    grub_cfg = bootmenu.render("grub.cfg.j2", menu=menu, **grub_paths).encode()
    files = [PxeFile(name, source) for name, source in pxelinux_files().items()]
    files += [PxeFile(name, source) for name, source in uefi_files(secure_boot, work).items()]
    files += [
        PxeFile(paths["kernel"], kernel),
        PxeFile(paths["initrd"], initrd),
        PxeFile(
            f"{PXELINUX_CFG}/default",
            data=bootmenu.render("isolinux.cfg.j2", menu=unknown, localboot=0, **paths).encode(),
        ),
        PxeFile(
            f"{GRUB_DIR}/grub.cfg",
            data=(
                bootmenu.render("grub-pxe-clients.cfg.j2")
                + bootmenu.render("grub.cfg.j2", menu=unknown, **grub_paths)
            ).encode(),
        ),
    ]
    for name in names:
        files.append(PxeFile(f"{PXELINUX_CFG}/{name}", data=pxelinux_cfg))
        files.append(PxeFile(f"{GRUB_DIR}/grub.cfg-{name}", data=grub_cfg))
    return files


def write_tree(root: Path, files: Sequence[PxeFile], epoch: int) -> list[Artifact]:
    """Write each file atomically below `root` with mode 0644 and mtime `epoch`; directories
    get the same mtime. Files already there that the tree does not name are left alone."""
    artifacts = []
    directories: set[Path] = set()
    for item in sorted(files, key=lambda f: f.path):
        target = root / item.path
        for parent in [target.parent, *target.parent.parents]:
            if parent == root or root not in parent.parents:
                break
            directories.add(parent)
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic.atomic_path(target, mode=FILE_MODE) as tmp:
            if item.source is not None:
                shutil.copyfile(item.source, tmp)
            else:
                assert item.data is not None
                Path(tmp).write_bytes(item.data)
            os.utime(tmp, (epoch, epoch))
        artifacts.append(Artifact.of(target, "pxe"))
    for directory in sorted(directories, reverse=True):
        directory.chmod(DIR_MODE)
        os.utime(directory, (epoch, epoch))
    return artifacts


def write_pxe(
    root: Path,
    *,
    kernel: Path,
    initrd: Path,
    host: str,
    host_dir: str,
    clients: Sequence[str],
    kernel_cmdline: str = "",
    boot_default: str = "rescue",
    boot_timeout: int = 30,
    consoles: Sequence[str] = bootmenu.DEFAULT_CONSOLES,
    secure_boot: bool = False,
    payload_dirs: Mapping[str, Path] | None = None,
    source_date_epoch: int | None = None,
    work_dir: Path,
) -> list[Artifact]:
    """Write the TFTP tree for one host below `root`; return every file as an artifact."""
    if payload_dirs:
        raise ConfigError(
            f"OUTPUT=PXE cannot carry {', '.join(sorted(payload_dirs))} (a backup with "
            "BACKUP_URL=iso:// goes inside an ISO).",
            hint="Use OUTPUT=ISO, or a BACKUP_URL outside the media such as nfs:// or file://.",
        )
    menu = bootmenu.build_menu(
        host=host,
        kernel_cmdline=kernel_cmdline,
        consoles=consoles,
        boot_default=boot_default,
        boot_timeout=boot_timeout,
    )
    work = work_dir / "pxe"
    work.mkdir(parents=True, exist_ok=True)
    files = pxe_files(
        kernel=kernel,
        initrd=initrd,
        host_dir=host_dir,
        menu=menu,
        clients=clients,
        secure_boot=secure_boot,
        work=work,
    )
    return write_tree(root, files, resolve_epoch(source_date_epoch))


class PxeEmitter(Emitter):
    """The TFTP tree in the output directory, or in PXE_TFTP_URL's directory."""

    name = "PXE"

    def root(self) -> Path:
        return self.spec.tftp_dir or self.spec.directory

    def check(self) -> None:
        check_host_dir(self.spec.prefix)
        host_config_names(self.spec.pxe_clients)
        tftp = self.spec.tftp_dir
        if tftp is not None and not tftp.is_dir():
            raise MissingError(
                f"The TFTP directory {tftp} (PXE_TFTP_URL) does not exist.",
                hint="Create it (or mount the TFTP server's directory there), or leave "
                "PXE_TFTP_URL empty to write the tree into the output directory.",
            )

    def write(self, *, kernel: Path, initrd: Path, work_dir: Path) -> list[Artifact]:
        own = {"host_dir": self.spec.prefix, "clients": self.spec.pxe_clients}
        return write_pxe(self.root(), **self.write_arguments(kernel, initrd, work_dir, **own))


EMITTER = PxeEmitter
