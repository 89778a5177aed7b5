"""output stage: write the media and the manifest that lists them."""

from __future__ import annotations

from pathlib import Path

from mkmedia.config import Config
from mkmedia.emit import Emitter, MediaSpec, destination, emitter_class
from mkmedia.emit.grub import host_secure_boot
from mkmedia.host import netif
from mkmedia.session import outputset
from mkmedia.session.artifacts import copy_artifact, write_manifest
from mkmedia.session.epoch import source_date_epoch
from mkmedia.session.log import say
from mkmedia.workflow import WORKFLOWS, Context, need, step

# The setting naming the device an OUTPUT kind writes to (MediaSpec.device).
DEVICE_SETTINGS = {"CDROM": "CDROM_DEVICE", "USB": "USB_DEVICE", "OBDR": "TAPE_DEVICE"}


def output_dir(ctx: Context) -> Path:
    return output_directory(ctx.config)


def output_directory(config: Config) -> Path:
    """Where this configuration's media and manifest are written (OUTPUT_URL/OUTPUT_PREFIX)."""
    return destination.output_dir(config.get_str("OUTPUT_URL")) / config.get_str("OUTPUT_PREFIX")


def wants_secure_boot(config: Config) -> bool:
    choice = config.get_str("SECURE_BOOT")
    if choice == "auto":
        return host_secure_boot()
    return choice == "yes"


def media_spec(
    config: Config,
    payload_dirs: dict[str, Path] | None = None,
    directory: Path | None = None,
    medium_id: str = "",
    tape_backup: Path | None = None,
) -> MediaSpec:
    """The settings an emitter needs, as plain values (`directory`: where it writes, by
    default the output directory itself)."""
    return MediaSpec(
        directory=directory or output_directory(config),
        prefix=config.get_str("OUTPUT_PREFIX"),
        host=config.system.hostname,
        kernel_cmdline=config.get_str("KERNEL_CMDLINE"),
        consoles=tuple(config.get_list("CONSOLES")),
        boot_default=config.get_str("BOOT_DEFAULT"),
        boot_timeout=config.get_int("BOOT_TIMEOUT"),
        volume_label=config.get_str("ISO_VOLID") or None,
        secure_boot=wants_secure_boot(config),
        device=config.get_str(DEVICE_SETTINGS.get(config.get_str("OUTPUT"), "CDROM_DEVICE")),
        source_date_epoch=source_date_epoch(),
        payload_dirs=dict(payload_dirs or {}),
        tftp_dir=tftp_directory(config),
        pxe_clients=tuple(pxe_clients(config)),
        disk_formats=disk_formats(config.get_str("RAWDISK_FORMAT")),
        medium_id=medium_id,
        usb_retain=config.get_int("USB_RETAIN"),
        tape_block_size=config.get_int("TAPE_BLOCK_SIZE"),
        tape_overwrite=config.get_bool("TAPE_OVERWRITE"),
        tape_backup=tape_backup,
    )


def tftp_directory(config: Config) -> Path | None:
    url = config.get_str("PXE_TFTP_URL")
    return destination.output_dir(url, setting="PXE_TFTP_URL") if url else None


def pxe_clients(config: Config) -> list[str]:
    """PXE_CLIENTS, or this machine's own MAC and IPv4 addresses (OUTPUT=PXE only)."""
    if config.get_str("OUTPUT") != "PXE":
        return []
    return config.get_list("PXE_CLIENTS") or netif.pxe_clients(netif.host_interfaces())


def disk_formats(choice: str) -> tuple[str, ...]:
    return ("raw", "qcow2") if choice == "both" else (choice,)


def emitter(config: Config) -> Emitter:
    """The emitter registered for OUTPUT (validation has refused a kind without one)."""
    return emitter_class(config.get_str("OUTPUT"))(media_spec(config))


@step("prep", 200)
def check_output(ctx: Context) -> None:
    """Ask the OUTPUT emitter whether this machine can take the media, before building."""
    if "output" in WORKFLOWS[ctx.workflow].stages:
        emitter(ctx.config).check()


@step("output", 100)
def write_media(ctx: Context) -> None:
    """Write the media with the emitter registered for OUTPUT."""
    kernel = need(ctx.kernel_image, "the kernel image")
    initrd = need(ctx.initrd, "the initrd")
    work_dir = ctx.build_dir / "emit"
    # A backup inside the media (BACKUP_URL=iso://) is handed over by the backup stage.
    payload = ctx.payload_dirs
    # Written into a staging directory, committed by the manifest step: a failure anywhere
    # before leaves the previous media and their manifest as they were.
    staging = outputset.open_staging(output_dir(ctx))
    ctx.output_staging = staging
    try:
        spec = media_spec(
            ctx.config,
            payload_dirs=payload,
            directory=staging,
            medium_id=ctx.medium_id,
            tape_backup=ctx.tape_backup,
        )
        media = emitter_class(ctx.config.get_str("OUTPUT"))(spec)
        ctx.artifacts.extend(media.write(kernel=kernel, initrd=initrd, work_dir=work_dir))
    except BaseException:
        outputset.discard(staging)
        raise


def _staging(ctx: Context) -> Path:
    return need(ctx.output_staging, "the output staging directory")


@step("output", 800, when=lambda c: c.get_bool("REPORT"))
def write_size_report(ctx: Context) -> None:
    """Put the rescue system's size report beside the media."""
    report = ctx.build_dir / "rootfs-report.txt"
    if report.exists():
        name = f"{ctx.config.get_str('OUTPUT_PREFIX')}-report.txt"
        staging = _staging(ctx)
        try:
            ctx.artifacts.append(copy_artifact(report, staging / name, "report"))
        except BaseException:
            outputset.discard(staging)
            raise


@step("output", 900)
def write_output_manifest(ctx: Context) -> None:
    """Put the staged media in place, then write manifest.json listing every artifact with
    size and sha256."""
    directory = output_dir(ctx)
    staging = _staging(ctx)
    try:
        ctx.artifacts = outputset.commit(staging, directory, ctx.artifacts)
    finally:
        outputset.discard(staging)
    manifest = write_manifest(
        directory / outputset.MANIFEST,
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
