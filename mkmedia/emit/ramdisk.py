"""OUTPUT=RAMDISK: the kernel and the initrd as files, for boot loaders and QEMU -kernel/-initrd."""

from __future__ import annotations

from pathlib import Path

from mkmedia.emit import Artifact, Emitter
from mkmedia.session.artifacts import copy_artifact


class RamdiskEmitter(Emitter):
    """<prefix>-kernel and <prefix>-initrd.img in the output directory."""

    name = "RAMDISK"

    def write(self, *, kernel: Path, initrd: Path, work_dir: Path) -> list[Artifact]:
        directory, prefix = self.spec.directory, self.spec.prefix
        return [
            copy_artifact(kernel, directory / f"{prefix}-kernel", "kernel"),
            copy_artifact(initrd, directory / f"{prefix}-initrd.img", "initrd"),
        ]


EMITTER = RamdiskEmitter
