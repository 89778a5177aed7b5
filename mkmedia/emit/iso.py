"""OUTPUT=ISO: a hybrid ISO that boots BIOS and UEFI machines from a CD or a USB stick.

Layout of the image (Rock Ridge names; ISO9660 8.3 and Joliet names are derived):

    isolinux/        isolinux.bin (BIOS El Torito entry), ldlinux.c32, menu.c32, ..., isolinux.cfg
    boot/vmlinuz     the kernel, boot/initrd the rescue initrd
    boot/grub/       grub.cfg (the UEFI menu) and efiboot.img (the UEFI El Torito entry: FAT)
    EFI/debian/      grub.cfg for the signed GRUB (Secure Boot only)
    mkmedia/         id-<hex>: the marker file GRUB finds this medium by
    <payload>/       extra directories (a backup with BACKUP_URL=iso://, ...)
"""

from __future__ import annotations

import hashlib
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from mkmedia.emit import Artifact, Emitter, bootmenu, efiimage, grub, hybrid, isolinux
from mkmedia.emit.isotree import BootEntry, IsoTree
from mkmedia.emit.labels import ISO9660_MAX, default_label, label_problem, suggestion, volume_labels
from mkmedia.session.epoch import source_date_epoch as environment_epoch
from rescue_runtime import atomic
from rescue_runtime.backup.medium import marker_path
from rescue_runtime.errors import ConfigError, MissingError

KERNEL = "/boot/vmlinuz"
INITRD = "/boot/initrd"
EFI_IMAGE = "/boot/grub/efiboot.img"
BOOT_CATALOG = "/isolinux/boot.cat"
RESERVED = ("isolinux", "boot", "efi", "mkmedia")


def default_volume_label(host: str) -> str:
    """RESCUE_<HOST> in ISO 9660's 32 d-characters (see labels.py for the shorter spaces)."""
    return default_label(host)


def iso_file_name(host: str) -> str:
    return f"mkmedia-{host.split('.')[0]}.iso"


def _epoch(source_date_epoch: int | None) -> int:
    if source_date_epoch is not None:
        return int(source_date_epoch)
    from_env = environment_epoch()
    return from_env if from_env is not None else int(time.time())


def derive_medium_id(*parts: object) -> str:
    """The id of a medium's marker file /mkmedia/id-<hex>, derived from what makes the build
    (reproducible: the same inputs give the same id)."""
    digest = hashlib.sha256("\0".join(str(part) for part in parts).encode())
    return digest.hexdigest()[:16].upper()


def _check_inputs(kernel: Path, initrd: Path, volume_label: str, secure_boot: bool) -> None:
    for what, path in (("kernel", kernel), ("initrd", initrd)):
        if not path.is_file():
            raise MissingError(f"The {what} {path} for the ISO does not exist.")
    problem = label_problem(volume_label)
    if problem is not None:
        raise ConfigError(
            f"The ISO volume label {volume_label!r} is not usable: {problem}.",
            hint=f"Set ISO_VOLID to 1 to {ISO9660_MAX} characters A-Z, 0-9 or '_' (for "
            f"example {suggestion(volume_label)}), or leave it empty for RESCUE_<HOST>.",
        )
    if secure_boot and not grub.kernel_is_signed(kernel):
        raise ConfigError(
            f"secure_boot is on but the kernel {kernel} carries no signature, so Secure Boot "
            "firmware would refuse to start it.",
            hint="Use the distribution's signed kernel (Debian: linux-image-amd64), or set "
            "secure_boot: false.",
        )


def write_iso(
    output: Path,
    *,
    kernel: Path,
    initrd: Path,
    volume_label: str | None,
    host: str,
    kernel_cmdline: str = "",
    boot_default: str = "local",
    boot_timeout: int = 30,
    consoles: Sequence[str] = bootmenu.DEFAULT_CONSOLES,
    serial_variants: Sequence[str] = bootmenu.DEFAULT_SERIAL_VARIANTS,
    secure_boot: bool = False,
    payload_dirs: Mapping[str, Path] | None = None,
    source_date_epoch: int | None = None,
    marker_id: str = "",
    work_dir: Path,
) -> list[Artifact]:
    """Write the hybrid rescue ISO to `output` (atomically) and return it as an artifact.

    `volume_label` None means RESCUE_<HOST>; `source_date_epoch` None means $SOURCE_DATE_EPOCH
    or now; `payload_dirs` maps a top-level directory name in the ISO to a local directory;
    `marker_id` is the medium id the rescue system knows (rescue.json), empty: one derived
    from the inputs here.
    """
    if volume_label is None:
        volume_label = default_volume_label(host)
    _check_inputs(kernel, initrd, volume_label, secure_boot)
    names = volume_labels(volume_label)
    epoch = _epoch(source_date_epoch)
    menu = bootmenu.build_menu(
        host=host,
        kernel_cmdline=kernel_cmdline,
        consoles=consoles,
        boot_default=boot_default,
        boot_timeout=boot_timeout,
        serial_variants=serial_variants,
    )
    work = work_dir / "iso"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    the_id = marker_id.upper() or derive_medium_id(
        volume_label, host, epoch, kernel.stat().st_size, initrd.stat().st_size, kernel_cmdline
    )
    marker = f"/{marker_path(the_id)}"

    tree = IsoTree()
    for name, source in isolinux.isolinux_files().items():
        tree.add_file(f"/isolinux/{name}", source)
    paths = {"kernel": KERNEL, "initrd": INITRD}
    tree.add_bytes(
        "/isolinux/isolinux.cfg",
        bootmenu.render("isolinux.cfg.j2", menu=menu, **paths).encode(),
        work,
    )
    tree.add_bytes(
        "/boot/grub/grub.cfg", bootmenu.render("grub.cfg.j2", menu=menu, **paths).encode(), work
    )
    tree.add_file(KERNEL, kernel)
    tree.add_file(INITRD, initrd)
    tree.add_bytes(marker, f"mkmedia rescue medium {the_id} for {host}\n".encode(), work)

    find_medium = work / "find-medium.cfg"
    if secure_boot:
        find_medium.write_text(
            bootmenu.render("grub-find-medium.cfg.j2", marker=marker, load_menu=True)
        )
        efi_files = grub.secure_boot_efi_files(find_medium)
        tree.add_file(f"/{grub.SIGNED_GRUB_CONFIG}", find_medium)
    else:
        find_medium.write_text(
            bootmenu.render("grub-find-medium.cfg.j2", marker=marker, load_menu=False)
        )
        efi_files = grub.plain_efi_files(grub.build_grub_efi(work / "bootx64.efi", find_medium))
    esp = efiimage.fat_image(
        work / "efiboot.img", efi_files.files, work_dir=work, epoch=epoch, label=names.fat
    )
    tree.add_file(EFI_IMAGE, esp)

    for name, source in sorted((payload_dirs or {}).items()):
        if name.strip("/").split("/")[0].lower() in RESERVED:
            raise ConfigError(
                f"The ISO payload directory {name!r} clashes with the boot files "
                f"({', '.join(RESERVED)} are taken).",
                hint="Choose another directory name for the payload.",
            )
        if not source.is_dir():
            raise MissingError(f"The ISO payload directory {source} does not exist.")
        tree.add_tree(name, source)

    boot = [
        BootEntry("/isolinux/isolinux.bin", boot_info_table=True, load_size=4),
        BootEntry(EFI_IMAGE, efi=True),
    ]
    with atomic.atomic_path(output) as partial:
        with open(partial, "wb") as out:
            blocks = tree.write(
                out,
                labels=names,
                epoch=epoch,
                boot=boot,
                boot_catalog=BOOT_CATALOG,
                hybrid=True,
                mbr_id=int(the_id[:8], 16),
            )
        esp_sectors = -(-esp.stat().st_size // hybrid.SECTOR)
        hybrid.add_esp_partition(partial, blocks[EFI_IMAGE] * 4, esp_sectors)
    shutil.rmtree(work, ignore_errors=True)
    return [Artifact.of(output, "iso")]


# The MediaSpec fields that write_iso() takes, under the same names.
SPEC_ARGUMENTS = (
    "volume_label",
    "host",
    "kernel_cmdline",
    "boot_default",
    "boot_timeout",
    "consoles",
    "secure_boot",
    "payload_dirs",
    "source_date_epoch",
)


class IsoEmitter(Emitter):
    """OUTPUT=ISO: the hybrid ISO <prefix>.iso in the output directory."""

    name = "ISO"

    def iso_path(self) -> Path:
        return self.spec.directory / f"{self.spec.prefix}.iso"

    def write(self, *, kernel: Path, initrd: Path, work_dir: Path) -> list[Artifact]:
        media = {name: getattr(self.spec, name) for name in SPEC_ARGUMENTS}
        return write_iso(
            self.iso_path(),
            kernel=kernel,
            initrd=initrd,
            work_dir=work_dir,
            marker_id=self.spec.medium_id,
            **media,
        )


EMITTER = IsoEmitter
