"""OUTPUT=RAMDISK: the kernel and the initrd as files, for boot loaders and QEMU -kernel/-initrd."""

from __future__ import annotations

from pathlib import Path

from mkmedia.emit import Artifact, Emitter
from mkmedia.session.artifacts import copy_artifact
from rescue_runtime.errors import ConfigError


class RamdiskEmitter(Emitter):
    """<prefix>-kernel and <prefix>-initrd.img in the output directory."""

    name = "RAMDISK"

    def write(self, *, kernel: Path, initrd: Path, work_dir: Path) -> list[Artifact]:
        directory, prefix = self.spec.directory, self.spec.prefix
        if self.spec.payload_dirs:
            raise ConfigError(
                f"OUTPUT=RAMDISK cannot carry {', '.join(sorted(self.spec.payload_dirs))} (a "
                "backup with BACKUP_URL=iso:// goes inside an ISO).",
                hint="Use OUTPUT=ISO, or a BACKUP_URL outside the media such as file://.",
            )
        return [
            copy_artifact(kernel, directory / f"{prefix}-kernel", "kernel"),
            copy_artifact(initrd, directory / f"{prefix}-initrd.img", "initrd"),
        ]


EMITTER = RamdiskEmitter
