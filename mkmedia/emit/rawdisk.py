"""OUTPUT=RAWDISK: a disk image that boots the rescue system on BIOS and UEFI machines.

    LBA 0        protective MBR with SYSLINUX's gptmbr.bin (BIOS boot code)
    LBA 1-33     GPT (backup in the last 33 sectors)
    1 MiB ...    partition 1: EFI system partition (FAT), flagged legacy BIOS bootable:
                   EFI/BOOT/BOOTX64.EFI   GRUB (or shim + signed GRUB with Secure Boot)
                   boot/grub/grub.cfg     the UEFI menu; boot/vmlinuz, boot/initrd
                   syslinux/              ldlinux.sys (BIOS: gptmbr.bin -> VBR -> SYSLINUX),
                                          syslinux.cfg and the menu modules
                   mkmedia/id-<hex>       the marker GRUB finds the partition by

No loop device: the FAT file system is made in a file of its own (mkfs.fat + mtools), copied
behind the GPT, and SYSLINUX is installed into the image at the partition's offset. GUIDs
derive from the inputs and every timestamp is SOURCE_DATE_EPOCH: the same inputs give the
same image. `qcow2` is converted from it by qemu-img.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

from mkmedia.emit import Artifact, Emitter, bootmenu, efiimage, gpt, grub, isolinux
from mkmedia.emit.iso import INITRD, KERNEL, derive_medium_id
from mkmedia.session.epoch import resolve_epoch
from rescue_runtime import atomic
from rescue_runtime.backup.medium import marker_path
from rescue_runtime.errors import ConfigError, MissingError
from rescue_runtime.run import require, run

GPTMBR = Path("/usr/lib/syslinux/mbr/gptmbr.bin")
SYSLINUX_DIR = "syslinux"
PARTITION_START = 2048  # sectors: 1 MiB alignment
MIB_SECTORS = 2048
FORMATS = ("raw", "qcow2")
# FAT32 needs at least 65525 clusters; below this size mkfs.fat picks FAT16 (or FAT12).
FAT32_MIN_KIB = 64 * 1024


def disk_file_name(prefix: str, fmt: str) -> str:
    return f"{prefix}.{'img' if fmt == 'raw' else fmt}"


def _partition_kib(files: Mapping[str, Path]) -> int:
    payload = efiimage.payload_kib(files) + 1024  # SYSLINUX's ldlinux.sys/.c32 and slack
    # two FATs of 4 bytes per 512-byte cluster at most, and directory clusters
    size = payload + payload // 32 + 1024
    return size + (-size) % 1024  # whole MiB


def _check_formats(formats: Sequence[str]) -> None:
    unknown = [fmt for fmt in formats if fmt not in FORMATS]
    if unknown or not formats:
        raise ConfigError(
            f"RAWDISK_FORMAT asks for {', '.join(unknown) or 'nothing'}; the formats are "
            f"{', '.join(FORMATS)}.",
            hint="Set RAWDISK_FORMAT to raw, qcow2 or both.",
        )


def _check(kernel: Path, initrd: Path, formats: Sequence[str], secure_boot: bool) -> None:
    for what, path in (("kernel", kernel), ("initrd", initrd)):
        if not path.is_file():
            raise MissingError(f"The {what} {path} for the disk image does not exist.")
    _check_formats(formats)
    if not GPTMBR.is_file():
        raise MissingError(
            f"SYSLINUX's GPT boot code {GPTMBR} is missing.",
            hint="Install the Debian package syslinux-common.",
        )
    if secure_boot:
        grub.require_signed_kernel(kernel)


def _syslinux_install(image: Path, offset_bytes: int, epoch: int) -> None:
    syslinux = require("syslinux", package="syslinux")
    env = {"SOURCE_DATE_EPOCH": str(epoch), "TZ": "UTC", "MTOOLS_SKIP_CHECK": "1"}
    argv = [syslinux, "--install", "--offset", str(offset_bytes), "--directory"]
    run([*argv, f"/{SYSLINUX_DIR}", str(image)], env=env, what="installing SYSLINUX into the image")


def write_rawdisk(
    directory: Path,
    prefix: str,
    *,
    kernel: Path,
    initrd: Path,
    host: str,
    formats: Sequence[str] = ("raw",),
    kernel_cmdline: str = "",
    boot_default: str = "rescue",
    boot_timeout: int = 30,
    consoles: Sequence[str] = bootmenu.DEFAULT_CONSOLES,
    secure_boot: bool = False,
    payload_dirs: Mapping[str, Path] | None = None,
    source_date_epoch: int | None = None,
    marker_id: str = "",
    work_dir: Path,
) -> list[Artifact]:
    """Write <prefix>.img and/or <prefix>.qcow2 into `directory`; return them as artifacts."""
    if payload_dirs:
        raise ConfigError(
            f"OUTPUT=RAWDISK cannot carry {', '.join(sorted(payload_dirs))} (a backup with "
            "BACKUP_URL=iso:// goes inside an ISO).",
            hint="Use OUTPUT=ISO, or a BACKUP_URL outside the media such as file://.",
        )
    _check(kernel, initrd, formats, secure_boot)
    epoch = resolve_epoch(source_date_epoch)
    menu = bootmenu.build_menu(
        host=host,
        kernel_cmdline=kernel_cmdline,
        consoles=consoles,
        boot_default=boot_default,
        boot_timeout=boot_timeout,
    )
    work = work_dir / "rawdisk"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    ident = marker_id.upper() or derive_medium_id(
        "RAWDISK", host, epoch, kernel.stat().st_size, initrd.stat().st_size, kernel_cmdline
    )
    marker = marker_path(ident)
    paths = {"kernel": KERNEL, "initrd": INITRD}
    texts = {
        f"{SYSLINUX_DIR}/syslinux.cfg": bootmenu.render("isolinux.cfg.j2", menu=menu, **paths),
        "boot/grub/grub.cfg": bootmenu.render("grub.cfg.j2", menu=menu, **paths),
        marker: f"mkmedia rescue disk {ident} for {host}\n",
    }
    files: dict[str, Path] = {}
    for index, (name, text) in enumerate(sorted(texts.items())):
        written = work / f"text-{index}"
        written.write_text(text)
        files[name] = written
    files.update(grub.medium_efi_files(f"/{marker}", secure_boot, work).files)
    for name, source in isolinux.isolinux_files().items():
        if name.endswith(".c32") and name != "ldlinux.c32":  # syslinux installs its own
            files[f"{SYSLINUX_DIR}/{name}"] = source
    files[KERNEL.lstrip("/")] = kernel
    files[INITRD.lstrip("/")] = initrd

    size_kib = _partition_kib(files)
    fat = efiimage.make_fat(
        work / "esp.img",
        files,
        size_kib,
        work_dir=work,
        epoch=epoch,
        volume_id=int(ident[:8], 16),
        label="MKMEDIA",
        fat_bits=32 if size_kib >= FAT32_MIN_KIB else None,
        hidden_sectors=PARTITION_START,
    )
    part_sectors = size_kib * 2
    total = PARTITION_START + part_sectors + MIB_SECTORS  # the backup GPT in the last MiB
    partition = gpt.Partition(
        first=PARTITION_START,
        last=PARTITION_START + part_sectors - 1,
        type=gpt.ESP_TYPE,
        guid=gpt.derived_guid("partition", ident),
        name="mkmedia rescue",
        attributes=gpt.LEGACY_BIOS_BOOTABLE,
    )
    raw = directory / disk_file_name(prefix, "raw")
    image = raw if "raw" in formats else work / "disk.img"
    with atomic.atomic_path(image, mode=0o644, durable=image == raw) as partial:
        with open(partial, "wb") as out:
            out.truncate(total * gpt.SECTOR)
            gpt.write_gpt(
                out,
                total,
                [partition],
                disk_guid=gpt.derived_guid("disk", ident),
                boot_code=GPTMBR.read_bytes(),
            )
            out.seek(PARTITION_START * gpt.SECTOR)
            with open(fat, "rb") as fat_file:
                shutil.copyfileobj(fat_file, out, 1 << 20)
        _syslinux_install(Path(partial), PARTITION_START * gpt.SECTOR, epoch)
    artifacts = [Artifact.of(raw, "rawdisk")] if "raw" in formats else []
    if "qcow2" in formats:
        artifacts.append(convert_qcow2(image, directory / disk_file_name(prefix, "qcow2")))
    shutil.rmtree(work, ignore_errors=True)
    return artifacts


def convert_qcow2(raw: Path, output: Path) -> Artifact:
    qemu_img = require("qemu-img", package="qemu-utils")
    with atomic.atomic_path(output, mode=0o644) as partial:
        run(
            [qemu_img, "convert", "-q", "-f", "raw", "-O", "qcow2", str(raw), str(partial)],
            what="converting the disk image to qcow2",
        )
    return Artifact.of(output, "qcow2")


class RawdiskEmitter(Emitter):
    """<prefix>.img (raw) and/or <prefix>.qcow2 in the output directory."""

    name = "RAWDISK"

    def check(self) -> None:
        _check_formats(self.spec.disk_formats)

    def write(self, *, kernel: Path, initrd: Path, work_dir: Path) -> list[Artifact]:
        spec = self.spec
        own = {"formats": spec.disk_formats, "marker_id": spec.medium_id}
        media = self.write_arguments(kernel, initrd, work_dir, **own)
        return write_rawdisk(spec.directory, spec.prefix, **media)


EMITTER = RawdiskEmitter
