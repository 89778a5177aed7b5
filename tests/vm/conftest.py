"""Session fixtures for the ISO boot tests (names start with iso_): a tiny busybox initrd and
the ISO variants, each built once per session."""

from __future__ import annotations

import gzip
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from mkmedia.emit.iso import write_iso
from mkmedia.kernel.choice import Kernel
from rescue_runtime.run import run_bytes

ISO_BUSYBOX = Path("/bin/busybox")  # busybox-static
ISO_MARKER = "MKMEDIA-RESCUE-PROMPT"
ISO_LOCAL_MARKER = "LOCAL-DISK-BOOTED"

_INIT = f"""#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /tmp
/bin/busybox mount -t proc proc /proc
/bin/busybox --install -s /bin
echo "{ISO_MARKER}"
echo "CMDLINE: $(cat /proc/cmdline)"
exec sh
"""


@pytest.fixture(scope="session")
def iso_test_initrd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A newc cpio (gzip) with a static busybox and an /init that prints the marker line."""
    if not ISO_BUSYBOX.is_file():
        pytest.skip(f"{ISO_BUSYBOX} is missing: install busybox-static")
    base = tmp_path_factory.mktemp("iso-initrd")
    root = base / "root"
    (root / "bin").mkdir(parents=True)
    (root / "dev").mkdir()
    shutil.copy2(ISO_BUSYBOX, root / "bin" / "busybox")
    (root / "init").write_text(_INIT)
    (root / "init").chmod(0o755)
    names = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    archive = run_bytes(
        ["cpio", "-o", "-H", "newc", "--quiet"], input="\n".join(names).encode(), cwd=root
    )
    initrd = base / "initrd.gz"
    initrd.write_bytes(gzip.compress(archive, compresslevel=6, mtime=0))
    return initrd


@pytest.fixture(scope="session")
def iso_build(
    tmp_path_factory: pytest.TempPathFactory, iso_test_initrd: Path, secure_boot_kernel: Kernel
) -> Callable[..., Path]:
    """Build (once per variant name) an ISO of the test initrd; keyword overrides per variant.

    The kernel is the one KERNEL=auto picks, checked to be Debian-signed: the variants with
    secure_boot=True must pass shim's verification."""
    cache: dict[str, Path] = {}
    base = tmp_path_factory.mktemp("iso-builds")

    def build(variant: str, **overrides: object) -> Path:
        if variant not in cache:
            output = base / f"{variant}.iso"
            args: dict[str, object] = {
                "kernel": secure_boot_kernel.image,
                "initrd": iso_test_initrd,
                "volume_label": "RESCUE_VMTEST",
                "host": "vmtest",
                "kernel_cmdline": "quiet mkmedia.test=1",
                "boot_default": "rescue",
                "boot_timeout": 1,
                "source_date_epoch": 1_700_000_000,
                "work_dir": base / f"work-{variant}",
            }
            args.update(overrides)
            write_iso(output, **args)
            cache[variant] = output
        return cache[variant]

    return build


@pytest.fixture(scope="session")
def iso_local_disk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1 MiB disk whose MBR boot code prints LOCAL-DISK-BOOTED on COM1 and halts."""
    message = (ISO_LOCAL_MARKER + "\r\n").encode() + b"\0"
    code = bytes(
        [
            0xFA,  # cli
            0x31, 0xC0,  # xor ax, ax
            0x8E, 0xD8,  # mov ds, ax
            0xFC,  # cld
            0xBE, 0x17, 0x7C,  # mov si, 0x7c17 (the message, right after this code)
            0xBA, 0xF8, 0x03,  # mov dx, 0x3f8 (COM1)
            0xAC,  # next: lodsb
            0x84, 0xC0,  # test al, al
            0x74, 0x03,  # jz done
            0xEE,  # out dx, al
            0xEB, 0xF8,  # jmp next
            0xF4,  # done: hlt
            0xEB, 0xFD,  # jmp done
        ]
    )  # fmt: skip
    assert len(code) == 0x17
    sector = (code + message).ljust(510, b"\0") + b"\x55\xaa"
    disk = tmp_path_factory.mktemp("iso-local") / "local.img"
    disk.write_bytes(sector + bytes((1 << 20) - 512))
    return disk
