"""OUTPUT=RAMDISK: the kernel, the initrd and the kernel command line as files, for boot
managers and virtualisation platforms that take them directly (QEMU -kernel/-initrd/-append)."""

from __future__ import annotations

from pathlib import Path

from mkmedia.emit import Artifact, Emitter, bootmenu
from mkmedia.session.artifacts import copy_artifact
from rescue_runtime import atomic
from rescue_runtime.errors import ConfigError


class RamdiskEmitter(Emitter):
    """<prefix>-kernel, <prefix>-initrd.img and <prefix>-cmdline (the rescue entry's kernel
    command line, one line) in the output directory."""

    name = "RAMDISK"

    def write(self, *, kernel: Path, initrd: Path, work_dir: Path) -> list[Artifact]:
        directory, prefix = self.spec.directory, self.spec.prefix
        if self.spec.payload_dirs:
            raise ConfigError(
                f"OUTPUT=RAMDISK cannot carry {', '.join(sorted(self.spec.payload_dirs))} (a "
                "backup with BACKUP_URL=iso:// goes inside an ISO).",
                hint="Use OUTPUT=ISO, or a BACKUP_URL outside the media such as file://.",
            )
        menu = bootmenu.build_menu(
            host=self.spec.host,
            kernel_cmdline=self.spec.kernel_cmdline,
            consoles=self.spec.consoles,
            boot_default=self.spec.boot_default,
            boot_timeout=self.spec.boot_timeout,
            serial_variants=(),
        )
        cmdline = directory / f"{prefix}-cmdline"
        atomic.write_text(cmdline, menu.entry("rescue").cmdline + "\n", mode=0o644)
        return [
            copy_artifact(kernel, directory / f"{prefix}-kernel", "kernel"),
            copy_artifact(initrd, directory / f"{prefix}-initrd.img", "initrd"),
            Artifact.of(cmdline, "cmdline"),
        ]


EMITTER = RamdiskEmitter
