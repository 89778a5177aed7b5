"""The ISO's structure as independent readers see it: xorriso, isoinfo, sfdisk, sgdisk, mtools."""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import time
from pathlib import Path

import pytest

from mkmedia.emit import bootmenu, cdrom, destination, grub
from mkmedia.emit.iso import default_volume_label, write_iso
from mkmedia.kernel.choice import Kernel
from rescue_runtime.errors import ConfigError, MissingError
from rescue_runtime.run import run
from tests.ciskip import opt_in

pytestmark = pytest.mark.integration

EPOCH = 1_700_000_000


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory, secure_boot_kernel: Kernel) -> dict[str, Path]:
    # the Secure Boot variants need the Debian-signed image; KERNEL=auto picks it here
    base = tmp_path_factory.mktemp("iso-inputs")
    initrd = base / "initrd.gz"
    initrd.write_bytes(gzip.compress(b"not a real initrd\n" * 1000, mtime=0))
    payload = base / "payload"
    (payload / "deep" / "er").mkdir(parents=True)
    long_name = "a-rather-long-file-name-that-does-not-fit-8.3-at-all.tar.gz"
    (payload / long_name).write_bytes(b"backup data\n" * 5000)
    (payload / "deep" / "er" / "restore.sh").write_text("#!/bin/sh\necho restored\n")
    (payload / "deep" / "er" / "restore.sh").chmod(0o755)
    os.symlink("deep/er/restore.sh", payload / "restore")
    return {"initrd": initrd, "payload": payload, "base": base, "kernel": secure_boot_kernel.image}


def build(inputs: dict[str, Path], name: str, **overrides: object) -> Path:
    output = inputs["base"] / "out" / name
    args: dict[str, object] = {
        "kernel": inputs["kernel"],
        "initrd": inputs["initrd"],
        "volume_label": "RESCUE_TESTHOST",
        "host": "testhost",
        "kernel_cmdline": "quiet",
        "boot_default": "local",
        "boot_timeout": 5,
        "payload_dirs": {"backup": inputs["payload"]},
        "source_date_epoch": EPOCH,
        "work_dir": inputs["base"] / f"work-{name}",
    }
    args.update(overrides)
    artifacts = write_iso(output, **args)
    assert [a.path for a in artifacts] == [output]
    assert artifacts[0].size == output.stat().st_size
    return output


@pytest.fixture(scope="module")
def iso(inputs: dict[str, Path]) -> Path:
    return build(inputs, "plain.iso")


@pytest.fixture(scope="module")
def secure_iso(inputs: dict[str, Path]) -> Path:
    return build(inputs, "secure.iso", secure_boot=True)


def xorriso_report(path: Path) -> str:
    result = run(
        ["xorriso", "-indev", path, "-report_el_torito", "plain", "-report_system_area", "plain"]
    )
    return result.stdout + result.stderr


def extract(iso: Path, path: str, dest: Path) -> Path:
    run(["xorriso", "-osirrox", "on", "-indev", iso, "-extract", path, dest])
    return dest


def test_xorriso_lists_both_boot_entries_and_the_esp_partition(iso: Path) -> None:
    report = xorriso_report(iso)
    assert re.search(r"El Torito boot img :\s+1\s+BIOS\s+y\s+none", report), report
    assert re.search(r"El Torito boot img :\s+2\s+UEFI\s+y\s+none", report), report
    assert re.search(r"El Torito img path :\s+1\s+/isolinux/isolinux.bin", report)
    assert re.search(r"El Torito img path :\s+2\s+/boot/grub/efiboot.img", report)
    assert "isohybrid-suitable" in report
    assert re.search(r"MBR partition\s+:\s+2\s+0x00\s+0xef", report), report
    assert re.search(r"MBR partition path :\s+2\s+/boot/grub/efiboot.img", report), report
    assert "GPT" not in report  # we write no GPT claims (pycdlib's is broken)


def test_isoinfo_sees_rock_ridge_joliet_and_el_torito(iso: Path) -> None:
    info = run(["isoinfo", "-d", "-i", iso]).stdout
    assert "Volume id: RESCUE_TESTHOST" in info
    assert "Rock Ridge signatures version 1 found" in info
    assert "Joliet with UCS level 3 found" in info
    assert "El Torito VD version 1 found" in info
    # isoinfo prints only the default (first) entry: the BIOS one, no emulation, 4 sectors
    assert re.search(r"Boot media 0 \(No Emulation Boot\)", info)
    assert re.search(r"Nsect 4", info)
    rock_ridge = run(["isoinfo", "-R", "-f", "-i", iso]).stdout.split()
    joliet = run(["isoinfo", "-J", "-f", "-i", iso]).stdout.split()
    for name in (
        "/boot/vmlinuz",
        "/boot/initrd",
        "/boot/grub/grub.cfg",
        "/isolinux/isolinux.cfg",
        "/backup/a-rather-long-file-name-that-does-not-fit-8.3-at-all.tar.gz",
        "/backup/deep/er/restore.sh",
    ):
        assert name in rock_ridge, name
    # Joliet names stop at 64 characters but every file is there
    assert "/backup/deep/er/restore.sh" in joliet
    assert any(n.startswith("/backup/a-rather-long-file-name") for n in joliet)
    plain = run(["isoinfo", "-f", "-i", iso]).stdout.split()
    assert all(re.fullmatch(r"[A-Z0-9_/.;]+", n) for n in plain), plain


def test_payload_round_trips(iso: Path, inputs: dict[str, Path], tmp_path: Path) -> None:
    out = extract(iso, "/backup", tmp_path / "backup")
    src = inputs["payload"]
    name = "a-rather-long-file-name-that-does-not-fit-8.3-at-all.tar.gz"
    assert (out / name).read_bytes() == (src / name).read_bytes()
    assert os.access(out / "deep" / "er" / "restore.sh", os.X_OK)
    assert os.readlink(out / "restore") == "deep/er/restore.sh"
    kernel = extract(iso, "/boot/vmlinuz", tmp_path / "vmlinuz")
    assert kernel.read_bytes() == inputs["kernel"].read_bytes()


def test_partition_table_readers(iso: Path) -> None:
    table = json.loads(run(["sfdisk", "--json", iso]).stdout)["partitiontable"]
    assert table["label"] == "dos"
    by_type = {p["type"]: p for p in table["partitions"]}
    esp = by_type["ef"]
    # the ESP partition is exactly the El Torito UEFI image
    report = xorriso_report(iso)
    lba = int(re.search(r"El Torito boot img :\s+2\s+UEFI.*?(\d+)\s*$", report, re.M).group(1))  # type: ignore[union-attr]
    assert esp["start"] == lba * 4
    assert "ef" in run(["fdisk", "-l", iso]).stdout.lower()
    verify = run(["sgdisk", "-v", iso], check=False).stdout
    assert "No problems found" in verify, verify


def test_esp_image_contents(iso: Path, secure_iso: Path, tmp_path: Path) -> None:
    plain = extract(iso, "/boot/grub/efiboot.img", tmp_path / "plain.img")
    listing = run(["mdir", "-i", plain, "-b", "::/EFI/BOOT"], env={"MTOOLS_SKIP_CHECK": "1"})
    assert "::/EFI/BOOT/BOOTX64.EFI" in listing.stdout
    secure = extract(secure_iso, "/boot/grub/efiboot.img", tmp_path / "secure.img")
    files = run(["mdir", "-i", secure, "-b", "-/", "::/"], env={"MTOOLS_SKIP_CHECK": "1"}).stdout
    for name in ("BOOTX64.EFI", "grubx64.efi", "mmx64.efi"):
        assert f"::/EFI/BOOT/{name}" in files, files
    assert "::/EFI/debian/grub.cfg" in files
    shim = tmp_path / "shim.efi"
    run(["mcopy", "-i", secure, "::/EFI/BOOT/BOOTX64.EFI", shim], env={"MTOOLS_SKIP_CHECK": "1"})
    assert shim.read_bytes() == grub.SHIM.read_bytes()
    # the signed GRUB finds /EFI/debian/grub.cfg on whatever it booted from: FAT or ISO9660
    cfg = extract(secure_iso, "/EFI/debian/grub.cfg", tmp_path / "grub.cfg").read_text()
    assert "search --no-floppy --file --set=root /mkmedia/id-" in cfg
    assert "configfile $prefix/grub.cfg" in cfg


def test_default_entry_is_local_in_both_menus(iso: Path, tmp_path: Path) -> None:
    grub_cfg = extract(iso, "/boot/grub/grub.cfg", tmp_path / "grub.cfg").read_text()
    assert "set default=local\n" in grub_cfg
    assert "set timeout=5\n" in grub_cfg
    local = re.search(r"menuentry '([^']*)' --id local \{(.*?)\}", grub_cfg, re.S)
    assert local and local.group(1) == "Boot from the first local disk"
    assert "exit" in local.group(2) and "linux" not in local.group(2)
    isolinux_cfg = extract(iso, "/isolinux/isolinux.cfg", tmp_path / "i.cfg").read_text()
    labels = re.split(r"\n(?=LABEL )", isolinux_cfg)
    defaults = [block.split()[1] for block in labels if "MENU DEFAULT" in block]
    assert defaults == ["local"]
    assert "LOCALBOOT" in next(b for b in labels if b.startswith("LABEL local"))
    assert "TIMEOUT 50" in isolinux_cfg
    assert "SERIAL 0 115200" in isolinux_cfg
    assert "serial --unit=0 --speed=115200" in grub_cfg
    rescue = re.search(r"--id rescue \{(.*?)\}", grub_cfg, re.S)
    assert rescue and "quiet console=tty0 console=ttyS0,115200" in rescue.group(1)
    # recover is a stub in this version: no menu entry offers it
    assert "unattended" not in grub_cfg and "unattended" not in isolinux_cfg
    assert "ecover" not in grub_cfg and "ecover" not in isolinux_cfg
    # a serial variant for the port the consoles do not name
    assert "--id rescue-ttyS1" in grub_cfg and "LABEL rescue-ttyS1" in isolinux_cfg


def test_menu_is_data_driven() -> None:
    menu = bootmenu.build_menu(
        host="h", kernel_cmdline="x=1", consoles=["tty0"], boot_default="rescue"
    )
    ids = [entry.id for entry in menu.entries]
    assert ids == ["rescue", "local", "rescue-ttyS0", "rescue-ttyS1"]
    assert menu.serial is None
    assert menu.entry("rescue-ttyS0").cmdline == "x=1 console=tty0 console=ttyS0,115200"
    with pytest.raises(ConfigError, match="BOOT_DEFAULT"):
        bootmenu.build_menu(host="h", kernel_cmdline="", boot_default="wipe")


def test_reproducible(inputs: dict[str, Path], iso: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # another work directory, another time zone, later: the same bytes
    time.sleep(2.1)  # past FAT's two-second date resolution, so a leaked clock would show
    monkeypatch.setenv("TZ", "America/New_York")
    again = build(inputs, "again.iso", work_dir=inputs["base"] / "elsewhere" / "work")
    assert again.read_bytes() == iso.read_bytes()
    other = build(inputs, "other-epoch.iso", source_date_epoch=EPOCH + 86400)
    assert other.read_bytes() != iso.read_bytes()


def test_secure_boot_needs_a_signed_kernel(inputs: dict[str, Path]) -> None:
    assert grub.kernel_is_signed(inputs["kernel"])
    unsigned = Path("/usr/lib/shim/shimx64.efi")  # a PE image without a signature
    assert not grub.kernel_is_signed(unsigned)
    with pytest.raises(ConfigError, match="carries no signature"):
        build(inputs, "unsigned.iso", secure_boot=True, kernel=unsigned)


def test_bad_inputs_are_refused(inputs: dict[str, Path]) -> None:
    with pytest.raises(ConfigError, match="volume label"):
        build(inputs, "bad.iso", volume_label="has spaces and is far too long for iso9660")
    with pytest.raises(ConfigError, match="clashes"):
        build(inputs, "bad.iso", payload_dirs={"boot": inputs["payload"]})
    with pytest.raises(MissingError, match="does not exist"):
        build(inputs, "bad.iso", initrd=inputs["base"] / "missing")
    assert not (inputs["base"] / "out" / "bad.iso").exists()
    assert default_volume_label("web-01.example.com") == "RESCUE_WEB_01"


def test_volume_label_defaults_to_the_host(inputs: dict[str, Path]) -> None:
    iso = build(inputs, "label.iso", volume_label=None, host="db-7.example.org", payload_dirs={})
    assert "Volume id: RESCUE_DB_7" in run(["isoinfo", "-d", "-i", iso]).stdout


def test_output_url() -> None:
    assert destination.output_dir(None) == Path("/var/lib/mkmedia/output")
    assert destination.output_dir("file:///srv/media") == Path("/srv/media")
    with pytest.raises(ConfigError, match="nfs"):
        destination.output_dir("nfs://server/export")
    with pytest.raises(ConfigError, match="scheme"):
        destination.output_dir("ftp://server/x")


def test_cdrom_without_a_drive_says_so(iso: Path) -> None:
    if cdrom.optical_writers():
        pytest.skip("this machine has an optical writer")
    with pytest.raises(MissingError, match="no writable optical drive"):
        cdrom.burn_iso(iso)
    with pytest.raises(MissingError, match="does not exist"):
        cdrom.burn_iso(iso, device="/dev/sr9")


def test_file_over_4_gib_is_multi_extent(tmp_path: Path, host_kernel: Kernel) -> None:
    # Reading and hashing 4 GiB (even of holes) took 150 s on the shared 2-core machine.
    opt_in("MKMEDIA_BIG_TESTS", "writes and reads a 4 GiB ISO (minutes)")
    if shutil.disk_usage(tmp_path).free < 6 << 30:
        pytest.skip(f"needs 6 GiB free in {tmp_path}")
    payload = tmp_path / "big"
    payload.mkdir()
    big = payload / "backup.tar"
    size = (4 << 30) + 1
    with open(big, "wb") as stream:  # sparse: costs no disk space
        stream.truncate(size)
        stream.seek(size - 1)
        stream.write(b"Z")
    initrd = tmp_path / "initrd"
    initrd.write_bytes(b"x")
    out = tmp_path / "big.iso"
    write_iso(
        out,
        kernel=host_kernel.image,
        initrd=initrd,
        volume_label="BIG",
        host="big",
        payload_dirs={"backup": payload},
        source_date_epoch=EPOCH,
        work_dir=tmp_path / "work",
    )
    try:
        listing = run(["xorriso", "-indev", out, "-lsl", "/backup"]).stdout
        assert re.search(rf"\b{size}\b.*backup.tar", listing), listing
        # the last byte survives the split into extents
        with open(out, "rb") as stream:
            data_end = stream.seek(0, os.SEEK_END)
        assert data_end > size
        tail = run(
            [
                "xorriso",
                "-osirrox",
                "on",
                "-indev",
                out,
                "-extract_cut",
                "/backup/backup.tar",
                str(size - 1),
                "1",
                tmp_path / "last",
            ]
        )
        assert tail.returncode == 0
        assert (tmp_path / "last").read_bytes() == b"Z"
    finally:
        out.unlink(missing_ok=True)


def test_marker_id_given_by_the_build(inputs: dict[str, Path], tmp_path: Path) -> None:
    """The id the rescue system knows (rescue.json's medium_id) names the marker file, and
    the hybrid MBR's disk id is its first 8 hex digits."""
    iso = build(inputs, "marker", marker_id="0123456789abcdef")
    marker = extract(iso, "/mkmedia/id-0123456789abcdef", tmp_path / "marker").read_text()
    assert "0123456789ABCDEF" in marker
    with open(iso, "rb") as f:
        f.seek(440)
        assert f.read(4) == (0x01234567).to_bytes(4, "little")
    menu = extract(iso, "/boot/grub/efiboot.img", tmp_path / "esp.img").read_bytes()
    assert b"/mkmedia/id-0123456789abcdef" in menu  # what GRUB searches for
