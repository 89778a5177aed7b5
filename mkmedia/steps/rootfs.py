"""rootfs stage: assemble the rescue root file system in the build area."""

from __future__ import annotations

import json
import os
from pathlib import Path

from mkmedia import __version__
from mkmedia.config import Config
from mkmedia.emit.iso import derive_medium_id
from mkmedia.host import netif
from mkmedia.kernel.modules import install_firmware, install_modules, select_modules
from mkmedia.pyembed.embed import embed_python
from mkmedia.rootfs.assemble import assemble_tree
from mkmedia.rootfs.rescuefiles import build_time, write_rescue_files
from mkmedia.rootfs.size import size_report
from mkmedia.rootfs.smoke import smoke_run as smoke_run_tree
from mkmedia.session.log import say
from mkmedia.settings import BY_NAME
from mkmedia.workflow import Context, need, step
from rescue_runtime.backup import method_class
from rescue_runtime.errors import StepError
from rescue_runtime.layout import store
from rescue_runtime.recover.finalize import finalize_programs
from rescue_runtime.recover.recreate import generate
from rescue_runtime.rescueconf import RescueConfig

# Each must start inside the tree; together they cover shell, storage stack, python, mkmedia.
SMOKE_COMMANDS: list[list[str]] = [
    ["bash", "-c", "true"],
    ["lvm", "version"],
    ["mdadm", "--version"],
    ["cryptsetup", "--version"],
    ["parted", "--version"],
    ["mkfs.ext4", "-V"],
    ["mkfs.xfs", "-V"],
    ["tar", "--version"],
    ["zstd", "--version"],
    ["python3", "-c", "import rescue_runtime"],
    ["mkmedia", "--help"],
]


@step("rootfs", 100)
def embed_python_runtime(ctx: Context) -> None:
    """Embed the interpreter and the standard-library modules the rescue runtime needs."""
    embedded = embed_python(
        ctx.tree,
        python=ctx.config.get_str("PYTHON"),
        source_date_epoch=ctx.epoch,
    )
    ctx.python = embedded
    say(f"  {embedded.summary()}")


def recover_programs(layout_dir: Path | None) -> list[str]:
    """What recover runs on the saved layout: its recreate script's programs and
    finalize's, so that a media that builds can also recreate what it was built for."""
    if layout_dir is None or not (layout_dir / store.JSON_NAME).is_file():
        return []
    layout = store.load(layout_dir)
    return [*generate(layout).programs, *finalize_programs(layout)]


@step("rootfs", 200)
def assemble_programs(ctx: Context) -> None:
    """Copy programs, libraries and COPY_AS_IS with their dependencies; check the tree."""
    embedded = need(ctx.python, "the embedded Python")
    elf_files = [str(p) for p in embedded.elf_files]
    result = assemble_tree(
        ctx.tree,
        programs=ctx.config.get_list("PROGS"),
        required_programs=[
            *ctx.config.get_list("REQUIRED_PROGS"),
            # what the backup method's restore side runs in the rescue system
            *method_class(ctx.config.get_str("BACKUP")).programs_for(
                ctx.config.get_str("BACKUP_URL")
            ),
            *recover_programs(ctx.layout_dir),
        ],
        libraries=[*ctx.config.get_list("LIBS"), *elf_files],
        copy_as_is=ctx.config.get_list("COPY_AS_IS"),
        exclude=ctx.config.get_list("EXCLUDE"),
    )
    for warning in result.warnings:
        ctx.warn(warning)
    say(f"  {len(result.programs)} programs, {result.files_copied} files copied")


@step("rootfs", 300)
def kernel_modules(ctx: Context) -> None:
    """Copy the chosen kernel's modules (MODULES_POLICY + MODULES) and firmware."""
    kernel = ctx.kernel
    policy = ctx.config.get_str("MODULES_POLICY")
    requests = ctx.config.get_list("MODULES") + ([] if policy == "explicit" else [policy])
    # what the backup method's restore side needs to reach the backup (iso://: the CD)
    requests += method_class(ctx.config.get_str("BACKUP")).modules_for(
        ctx.config.get_str("BACKUP_URL")
    )
    selection = select_modules(kernel, requests, base=(), firmware=ctx.config.get_list("FIRMWARE"))
    for missing in selection.not_found:
        ctx.warn(f"kernel module {missing}: not in kernel {kernel.version}")
    install_modules(selection, ctx.tree)
    install_firmware(selection, ctx.tree)
    say(f"  kernel {kernel.version}: {selection.summary()}")


def rescue_config(config: Config, *, created: str, medium_id: str = "") -> RescueConfig:
    return RescueConfig(
        hostname=config.system.hostname,
        created=created,
        mkmedia_version=__version__,
        os_pretty_name=config.system.os_pretty_name,
        kernel_version=config.kernel_version,
        backup=config.get_str("BACKUP"),
        backup_url=config.get_str("BACKUP_URL"),
        output=config.get_str("OUTPUT"),
        medium_id=medium_id.lower(),
        network=config.get_str("NETWORK"),
        # the cards rescue init configures (NETWORK=saved) and finalize maps to new ones
        saved_interfaces=netif.host_interfaces(),
        modules_load=config.get_list("MODULES_LOAD"),
        ssh_authorized_keys=config.get_list("SSH_AUTHORIZED_KEYS"),
        ssh_root_password_hash=config.get_str("SSH_ROOT_PASSWORD_HASH"),
        unattended_action=config.get_str("UNATTENDED_ACTION"),
        # build-host paths (work area, output, layout directory) stay out: they differ between
        # builds of the same recipe and mean nothing in the rescue system
        settings={name: value for name, value in config.values.items() if BY_NAME[name].rescue},
    )


@step("rootfs", 800)
def rescue_system_files(ctx: Context) -> None:
    """Write /init, /etc/mkmedia/rescue.json and the shell profile."""
    created = build_time(ctx.epoch)
    config = ctx.config
    # The media's marker: the rescue system finds its own medium by it (the ISO cannot be
    # hashed into it, the initrd is inside the ISO); what makes this build is.
    ctx.medium_id = derive_medium_id(
        config.system.hostname,
        created,
        config.kernel_version,
        config.get_str("KERNEL_CMDLINE"),
        config.get_str("ISO_VOLID"),
        config.get_str("BACKUP_URL"),
        __version__,
    )
    rescue = rescue_config(config, created=created, medium_id=ctx.medium_id)
    write_rescue_files(ctx.tree, rescue)


@step("rootfs", 850)
def smoke_run(ctx: Context) -> None:
    """Start the essential programs inside a chroot of the tree (root only)."""
    if os.geteuid() != 0:
        ctx.warn("not root: the chroot smoke run of the rescue tree was skipped")
        return
    result = smoke_run_tree(ctx.tree, SMOKE_COMMANDS)
    failed = [r for r in result if not r.ok]
    if failed:
        lines = "; ".join(f"`{' '.join(r.command)}`: {r.output.strip()[-200:]}" for r in failed)
        raise StepError(
            f"The rescue tree is not self-sufficient: these commands fail in a chroot of it: "
            f"{lines}",
            hint="Add the missing programs or libraries to PROGS/LIBS, or report a bug.",
        )


@step("rootfs", 900, when=lambda c: c.get_bool("REPORT"))
def size_report_file(ctx: Context) -> None:
    """Report the tree's size by part and its largest files."""
    report = size_report(ctx.tree)
    (ctx.build_dir / "rootfs-report.txt").write_text(report.as_text())
    (ctx.build_dir / "rootfs-report.json").write_text(json.dumps(report.as_dict(), indent=2))
