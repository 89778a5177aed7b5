"""Our walk of an initramfs reads what the real tools write: an early microcode archive and
a zstd main archive made by GNU cpio and the zstd program, as Debian's mkinitramfs does."""

from __future__ import annotations

from pathlib import Path

import pytest

from rescue_runtime.recover.finalize_initramfs import module_name, walk_initramfs
from rescue_runtime.run import run, run_bytes
from tests.files import write_files

pytestmark = pytest.mark.integration


def newc(tree: Path, names: list[str]) -> bytes:
    listing = "".join(f"{n}\n" for n in names).encode()
    return run_bytes(["cpio", "--quiet", "-o", "-H", "newc"], input=listing, cwd=tree)


def test_walk_agrees_with_the_real_cpio_and_zstd(tmp_path: Path) -> None:
    early_tree = write_files(tmp_path / "early", {"kernel/x86/microcode/AuthenticAMD.bin": "u"})
    main_files = {
        "init": "#!/bin/sh\n",
        "usr/lib/modules/9.9.9/kernel/drivers/nvme/host/nvme.ko.zst": "m" * 5000,
        "usr/lib/modules/9.9.9/kernel/drivers/ata/ahci.ko": "a" * 3,
        "etc/crypttab": "root UUID=x none luks\n",
    }
    main_tree = write_files(tmp_path / "main", main_files)
    early = newc(early_tree, ["kernel", "kernel/x86", "kernel/x86/microcode",
                              "kernel/x86/microcode/AuthenticAMD.bin"])  # fmt: skip
    main = run_bytes(["zstd", "-q", "-c", "-19"], input=newc(main_tree, sorted(main_files)))
    image = tmp_path / "initrd.img-9.9.9"
    image.write_bytes(early + main)
    # what GNU cpio itself lists in the main archive
    listed = run(["cpio", "--quiet", "-t"], input=run_bytes(["zstd", "-dc"], input=main)).stdout

    names = walk_initramfs(image)
    assert names[:4] == ["kernel", "kernel/x86", "kernel/x86/microcode",
                         "kernel/x86/microcode/AuthenticAMD.bin"]  # fmt: skip
    assert names[4:] == listed.split()
    assert {module_name(n) for n in names if ".ko" in n} == {"nvme", "ahci"}
