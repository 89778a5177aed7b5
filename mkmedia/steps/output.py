"""output stage: write the media and the manifest that lists them."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from mkmedia.config import Config
from mkmedia.emit import cdrom, destination
from mkmedia.emit.grub import host_secure_boot
from mkmedia.emit.iso import write_iso
from mkmedia.session.artifacts import Artifact, write_manifest
from mkmedia.session.epoch import source_date_epoch
from mkmedia.session.log import say
from mkmedia.workflow import Context, step
from rescue_runtime.errors import MissingError


def output_dir(ctx: Context) -> Path:
    return output_directory(ctx.config)


def output_directory(config: Config) -> Path:
    """Where this configuration's media and manifest are written (OUTPUT_URL/OUTPUT_PREFIX)."""
    return destination.output_dir(config.get_str("OUTPUT_URL")) / config.get_str("OUTPUT_PREFIX")


def copy_artifact(source: Path, destination: Path, kind: str) -> Artifact:
    """Copy to a temporary name beside the destination, then rename: never half a file."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(f".{destination.name}.partial")
    shutil.copyfile(source, partial)
    os.replace(partial, destination)
    return Artifact.of(destination, kind)


@step("output", 100, when=lambda c: c.get_str("OUTPUT") == "RAMDISK")
def write_ramdisk(ctx: Context) -> None:
    """RAMDISK output: the kernel and initrd, for boot loaders and QEMU -kernel/-initrd."""
    directory = output_dir(ctx)
    prefix = ctx.config.get_str("OUTPUT_PREFIX")
    kernel = ctx.state["kernel_image"]
    initrd = ctx.state["initrd"]
    assert isinstance(kernel, Path) and isinstance(initrd, Path)
    ctx.artifacts.append(copy_artifact(kernel, directory / f"{prefix}-kernel", "kernel"))
    ctx.artifacts.append(copy_artifact(initrd, directory / f"{prefix}-initrd.img", "initrd"))


def wants_secure_boot(config: Config) -> bool:
    choice = config.get_str("SECURE_BOOT")
    if choice == "auto":
        return host_secure_boot()
    return choice == "yes"


def iso_path(config: Config) -> Path:
    return output_directory(config) / f"{config.get_str('OUTPUT_PREFIX')}.iso"


@step("output", 100, when=lambda c: c.get_str("OUTPUT") in ("ISO", "CDROM"))
def write_iso_image(ctx: Context) -> None:
    """Write the hybrid ISO (BIOS + UEFI, CD and USB stick) with the boot menus."""
    kernel = ctx.state["kernel_image"]
    initrd = ctx.state["initrd"]
    assert isinstance(kernel, Path) and isinstance(initrd, Path)
    config = ctx.config
    artifacts = write_iso(
        iso_path(config),
        kernel=kernel,
        initrd=initrd,
        volume_label=config.get_str("ISO_VOLID") or None,
        host=config.system.hostname,
        kernel_cmdline=config.get_str("KERNEL_CMDLINE"),
        boot_default=config.get_str("BOOT_DEFAULT"),
        boot_timeout=config.get_int("BOOT_TIMEOUT"),
        consoles=config.get_list("CONSOLES"),
        secure_boot=wants_secure_boot(config),
        payload_dirs=ctx.state.get("iso_payload_dirs"),  # type: ignore[arg-type]
        source_date_epoch=source_date_epoch(),
        work_dir=ctx.build_dir / "iso",
    )
    ctx.artifacts.extend(artifacts)


@step("prep", 200, when=lambda c: c.get_str("OUTPUT") == "CDROM")
def check_optical_drive(ctx: Context) -> None:
    """OUTPUT=CDROM: find a writable drive before building anything."""
    device = ctx.config.get_str("CDROM_DEVICE")
    if device:
        if not Path(device).exists():
            raise MissingError(
                f"The optical drive {device} (CDROM_DEVICE) does not exist.",
                hint="Check the device name with `xorriso -devices`.",
            )
        return
    if not cdrom.optical_writers():
        raise MissingError(
            "OUTPUT=CDROM but this machine has no writable optical drive (xorriso -devices "
            "lists none).",
            hint="Connect a CD/DVD writer, set CDROM_DEVICE, or use OUTPUT=ISO.",
        )


@step("output", 200, when=lambda c: c.get_str("OUTPUT") == "CDROM")
def burn_cdrom(ctx: Context) -> None:
    """OUTPUT=CDROM: burn the ISO to the optical medium."""
    device = ctx.config.get_str("CDROM_DEVICE") or None
    ctx.artifacts.extend(cdrom.burn_iso(iso_path(ctx.config), device=device))


@step("output", 800, when=lambda c: c.get_bool("REPORT"))
def write_size_report(ctx: Context) -> None:
    """Put the rescue system's size report beside the media."""
    report = ctx.build_dir / "rootfs-report.txt"
    if report.exists():
        name = f"{ctx.config.get_str('OUTPUT_PREFIX')}-report.txt"
        ctx.artifacts.append(copy_artifact(report, output_dir(ctx) / name, "report"))


@step("output", 900)
def write_output_manifest(ctx: Context) -> None:
    """Write manifest.json listing every artifact with size and sha256."""
    directory = output_dir(ctx)
    manifest = write_manifest(
        directory / "manifest.json",
        ctx.artifacts,
        {
            "host": ctx.config.system.hostname,
            "workflow": ctx.workflow,
            "output": ctx.config.get_str("OUTPUT"),
            "kernel_version": ctx.config.kernel_version,
        },
    )
    ctx.artifacts.append(manifest)
    for artifact in ctx.artifacts:
        say(f"  {artifact.kind:<9} {artifact.path} ({artifact.size} bytes)")
