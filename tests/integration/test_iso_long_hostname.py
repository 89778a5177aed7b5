"""A real ISO for a long host name: every label fits, independent readers see them, and the
GRUB config embedded in the EFI image names a marker that is really on the medium."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import pytest

from mkmedia.emit import labels
from mkmedia.emit.iso import write_iso
from mkmedia.kernel.choice import choose_kernel
from rescue_runtime.errors import MissingError
from rescue_runtime.run import run

pytestmark = pytest.mark.integration

LONG_HOST = "very-long-host-name-of-a-database-server-in-the-second-room-042"
SECTOR = 2048
_FIND_MEDIUM = re.compile(rb"search --no-floppy --file --set=root (/mkmedia/id-[0-9a-f]+)")


def joliet_volume_id(iso: Path) -> str:
    """The Joliet descriptor's volume identifier, read from the volume descriptor set."""
    with open(iso, "rb") as stream:
        for sector in range(16, 32):
            stream.seek(sector * SECTOR)
            descriptor = stream.read(SECTOR)
            if descriptor[0] == 255:
                break
            # type 2 (supplementary) with a UCS-2 escape sequence (%/@, %/C, %/E)
            if descriptor[0] == 2 and descriptor[88:90] == b"%/":
                return descriptor[40:72].decode("utf-16-be").rstrip()
    raise AssertionError(f"{iso} has no Joliet descriptor")


def blkid_label(path: Path) -> str:
    return run(["blkid", "-p", "-o", "value", "-s", "LABEL", path]).stdout.strip()


@pytest.fixture(scope="module")
def kernel() -> Path:
    try:
        return choose_kernel("auto").image  # the kernel the product would choose
    except MissingError as exc:
        pytest.skip(f"no kernel to put on the ISO: {exc}")


@pytest.mark.parametrize(
    ("host", "volume_label"),
    [
        (LONG_HOST, None),  # the default label, RESCUE_<HOST>, is fitted
        ("db-primary-01", "RESCUE_DB_PRIMARY_01"),  # the reported ISO_VOLID
    ],
)
def test_long_names_make_a_valid_iso(
    host: str, volume_label: str | None, kernel: Path, tmp_path: Path
) -> None:
    assert len(LONG_HOST) == 63  # the longest DNS label
    initrd = tmp_path / "initrd.gz"
    initrd.write_bytes(gzip.compress(b"a tiny initrd\n" * 100, mtime=0))
    iso = tmp_path / "long.iso"
    write_iso(
        iso,
        kernel=kernel,
        initrd=initrd,
        volume_label=volume_label,
        host=host,
        source_date_epoch=1_700_000_000,
        work_dir=tmp_path / "work",
    )
    label = volume_label or labels.default_label(host)
    names = labels.volume_labels(label)
    assert len(names.joliet) == 16

    info = run(["isoinfo", "-d", "-i", iso]).stdout
    assert f"Volume id: {names.iso9660}\n" in info
    assert "Joliet with UCS level 3 found" in info
    assert joliet_volume_id(iso) == names.joliet
    # libblkid merges the two: /dev/disk/by-label shows the whole ISO 9660 label
    assert blkid_label(iso) == names.iso9660
    pvd = run(["xorriso", "-indev", iso, "-pvd_info"]).stdout
    assert re.search(rf"^Volume Id\s*:\s*{names.iso9660}$", pvd, re.MULTILINE), pvd

    # The EFI image: its FAT label, and the config GRUB runs to find this medium.
    esp = tmp_path / "efiboot.img"
    run(["xorriso", "-osirrox", "on", "-indev", iso, "-extract", "/boot/grub/efiboot.img", esp])
    assert blkid_label(esp) == names.fat
    grub_efi = tmp_path / "bootx64.efi"
    run(["mcopy", "-i", esp, "::/EFI/BOOT/BOOTX64.EFI", grub_efi])
    found = _FIND_MEDIUM.search(grub_efi.read_bytes())
    assert found, "the embedded GRUB config does not search for a marker"
    marker = found.group(1).decode()
    # GRUB reads Rock Ridge or Joliet names: the marker must be there under both.
    assert marker in run(["isoinfo", "-R", "-f", "-i", iso]).stdout.split()
    assert marker in run(["isoinfo", "-J", "-f", "-i", iso]).stdout.split()
