"""Tapes: the SIMH .tap backend, our label, the tape layouts, and the st ioctl layer against
a fake device that records every operation (no tape drive exists on these machines)."""

from __future__ import annotations

import hashlib
import json
import random
import struct
from itertools import groupby
from pathlib import Path

import pytest

from rescue_runtime.tape import layout as tl
from rescue_runtime.tape.base import EndOfMedium, TapeError
from rescue_runtime.tape.label import Label, parse
from rescue_runtime.tape.simh import SimhTape
from rescue_runtime.tape.st import MTGET, MTIOCGET, MTIOCTOP, MTOP, StTape
from tests.unit.fake_tape import FM, FakeTapeDevice
from tests.unit.fake_tape import MTGET as FAKE_MTGET
from tests.unit.fake_tape import MTIOCGET as KERNEL_MTIOCGET
from tests.unit.fake_tape import MTIOCTOP as KERNEL_MTIOCTOP


def simh_records(path: Path) -> list[bytes | None]:
    """An independent SIMH parser: records (None: filemark) up to the end-of-medium word."""
    data = path.read_bytes()
    out: list[bytes | None] = []
    at = 0
    while True:
        (word,) = struct.unpack_from("<I", data, at)
        if word == 0xFFFFFFFF:
            break
        if word == 0:
            out.append(None)
            at += 4
            continue
        record = data[at + 4 : at + 4 + word]
        (trailer,) = struct.unpack_from("<I", data, at + 4 + word + word % 2)
        assert trailer == word
        out.append(record)
        at += 8 + word + word % 2
    assert not data[at + 4 :].strip(b"\0")  # only the sector padding after the end
    assert len(data) % 512 == 0
    return out


def test_simh_round_trip_and_spacing(tmp_path: Path) -> None:
    path = tmp_path / "t.tap"
    tape = SimhTape(path, write=True)
    tape.write_record(b"abc")  # odd: padded to even on the image
    tape.write_record(b"x" * 10)
    tape.write_filemark()
    tape.write_record(b"second file")
    tape.write_filemark(2)
    tape.close()
    assert simh_records(path) == [b"abc", b"x" * 10, None, b"second file", None, None]
    raw = path.read_bytes()
    assert raw[:12] == struct.pack("<I", 3) + b"abc\0" + struct.pack("<I", 3)

    tape = SimhTape(path)
    assert tape.read_record(100) == b"abc"
    tape.space_filemarks(1)
    assert tape.read_record(100) == b"second file"
    tape.space_filemarks(-1)  # back past the first filemark, stopping before it
    assert tape.read_record(100) == b""
    assert tape.read_record(100) == b"second file"
    assert tape.read_record(100) == b"" and tape.read_record(100) == b""
    with pytest.raises(EndOfMedium):
        tape.read_record(100)
    tape.rewind()
    with pytest.raises(TapeError, match="more than the 2 expected"):
        tape.read_record(2)
    tape.close()


def test_simh_damage_is_named(tmp_path: Path) -> None:
    path = tmp_path / "t.tap"
    tape = SimhTape(path, write=True)
    tape.write_record(b"y" * 8)
    tape.close()
    raw = bytearray(path.read_bytes())
    raw[12] = 7  # the trailing length word
    path.write_bytes(bytes(raw))
    with pytest.raises(TapeError, match="trailing length differs"):
        SimhTape(path).read_record(100)


def test_simh_fixed_block_mode_splits_whole_blocks(tmp_path: Path) -> None:
    tape = SimhTape(tmp_path / "t.tap", write=True)
    tape.set_block_size(4)
    tape.write_record(b"12345678")
    with pytest.raises(TapeError, match="whole number of blocks"):
        tape.write_record(b"123")
    tape.close()
    assert simh_records(tmp_path / "t.tap") == [b"1234", b"5678"]


def test_label_round_trip_and_foreign_records() -> None:
    label = Label("obdr", host="h", medium_id="ABC", iso_size=4096, block_size=65536)
    record = label.record()
    assert len(record) == 512 and record.startswith(b"MKMEDIA TAPE LABEL 1\n")
    assert parse(record, "t") == label
    assert parse(b"VOL1MYTAPE" + bytes(70), "t") is None
    with pytest.raises(TapeError, match="cannot be read"):
        parse(b"MKMEDIA TAPE LABEL 1\n{broken", "t")


def test_mtio_layouts_match_the_kernel_header() -> None:
    assert MTIOCTOP == KERNEL_MTIOCTOP and MTIOCGET == KERNEL_MTIOCGET
    assert MTOP.size == 8 and MTGET.size == FAKE_MTGET.size == 48
    assert MTOP.pack(20, 2048) == struct.pack("<hxxi", 20, 2048)


def fake_iso(path: Path, blocks: int = 40) -> bytes:
    data = random.Random(3).randbytes(blocks * 2048)
    path.write_bytes(data)
    return data


def fake_backup(tmp_path: Path, size: int = 200_000) -> tl.Backup:
    volume = tmp_path / "backup.tar.zst"
    data = random.Random(5).randbytes(size)
    volume.write_bytes(data)
    manifest = {
        "format_version": 1,
        "files": 3,
        "volumes": [
            {"name": volume.name, "size": size, "sha256": hashlib.sha256(data).hexdigest()}
        ],
    }
    return tl.Backup(manifest, volume)


def runs(ops: list[tuple[object, ...]]) -> list[tuple[object, ...]]:
    """Consecutive equal operations as (operation..., count)."""
    return [(*op, len(list(group))) for op, group in groupby(ops)]


def test_full_obdr_write_follows_the_documented_procedure(tmp_path: Path) -> None:
    iso = fake_iso(tmp_path / "r.iso")
    backup = fake_backup(tmp_path)
    device = FakeTapeDevice()
    tape = StTape("/dev/nst0", write=True, io=device)
    label = Label("obdr", host="h", medium_id="M", block_size=32768)
    tl.write_obdr(tape, label, tmp_path / "r.iso", backup, block_size=32768)
    tape.close()
    manifest_records = -(-len(json.dumps(backup.manifest, sort_keys=True)) // 512)
    data_records = -(-backup.size // 32768)
    assert runs(device.ops) == [
        ("open", "/dev/nst0", 1),
        ("MTREW", 1, 1),
        # the 10 KiB header: 512-byte records, compression off
        ("MTSETBLK", 512, 1),
        ("MTCOMPRESSION", 0, 1),
        ("write", 512, 512, False, 20),
        # the ISO: 2048-byte records, compression off, then a filemark
        ("MTSETBLK", 2048, 1),
        ("MTCOMPRESSION", 0, 1),
        ("write", 2048, 2048, False, len(iso) // 2048),
        ("MTWEOF", 1, 1),
        # the backup's manifest, a filemark, the stream with compression on, two filemarks
        ("MTSETBLK", 512, 1),
        ("MTCOMPRESSION", 0, 1),
        ("write", 512, 512, False, manifest_records),
        ("MTWEOF", 1, 1),
        ("MTSETBLK", 32768, 1),
        ("MTCOMPRESSION", 1, 1),
        ("write", 32768, 32768, True, data_records),
        ("MTWEOF", 2, 1),
        ("close", 1),
    ]
    # and what the fake tape holds reads back through the same driver calls
    device.ops.clear()
    reader = StTape("/dev/nst0", io=device)
    on_tape = tl.open_backup(reader)
    assert on_tape.label == label and on_tape.manifest == backup.manifest
    got = bytearray()
    tl.stream_backup(reader, on_tape, got.extend)
    assert bytes(got) == backup.volume.read_bytes()
    assert ("MTREW", 1) in device.ops and ("MTFSF", 1) in device.ops


def test_end_of_medium_says_how_far_the_write_got(tmp_path: Path) -> None:
    fake_iso(tmp_path / "r.iso")
    device = FakeTapeDevice(capacity=20 * 512 + 10 * 2048)
    tape = StTape("/dev/nst0", write=True, io=device)
    with pytest.raises(EndOfMedium) as caught:
        tl.write_obdr(tape, Label("obdr"), tmp_path / "r.iso", None)
    text = str(caught.value)
    assert "is full" in text and "30 records" in text and "cut off in the ISO" in text
    assert "complete: the 10 KiB header" in text and "not usable" in text


def test_rewinding_device_is_refused() -> None:
    with pytest.raises(TapeError, match="/dev/nst0 instead"):
        StTape("/dev/st0", io=FakeTapeDevice())


def test_obdr_image_record_structure(tmp_path: Path) -> None:
    iso = fake_iso(tmp_path / "r.iso", blocks=17)
    backup = fake_backup(tmp_path, size=100_001)
    path = tmp_path / "t.tap"
    tape = SimhTape(path, write=True)
    tl.write_obdr(tape, Label("obdr", block_size=4096), tmp_path / "r.iso", backup, block_size=4096)
    tape.close()
    records = simh_records(path)
    assert all(r is not None and len(r) == 512 for r in records[:20])
    assert parse(records[0] or b"", "t") is not None and records[1] == bytes(512)
    iso_part = records[20 : 20 + 17]
    assert all(r is not None and len(r) == 2048 for r in iso_part)
    assert b"".join(r for r in iso_part if r) == iso
    assert records[37] is FM
    manifest_end = records.index(FM, 38)
    text = b"".join(r for r in records[38:manifest_end] if r)
    assert json.loads(text) == backup.manifest
    data = records[manifest_end + 1 : -2]
    assert all(r is not None and len(r) == 4096 for r in data)
    stream = b"".join(r for r in data if r)
    assert stream[: backup.size] == backup.volume.read_bytes()
    assert not stream[backup.size :].strip(b"\0")
    assert records[-2:] == [FM, FM]


def test_damaged_stream_is_refused(tmp_path: Path) -> None:
    backup = fake_backup(tmp_path)
    path = tmp_path / "t.tap"
    tape = SimhTape(path, write=True)
    tl.write_plain(tape, Label("plain", block_size=8192), backup, block_size=8192)
    tape.close()
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    reader = SimhTape(path)
    on_tape = tl.open_backup(reader)
    with pytest.raises(TapeError, match="does not match the sha256"):
        tl.stream_backup(reader, on_tape, lambda piece: None)


def test_foreign_tapes_are_recognised(tmp_path: Path) -> None:
    blank = FakeTapeDevice()
    assert tl.foreign_content(StTape("/dev/nst0", io=blank)) is None
    ours = tmp_path / "ours.tap"
    tape = SimhTape(ours, write=True)
    tl.write_plain(tape, Label("blank"), None)
    tape.close()
    assert tl.foreign_content(SimhTape(ours)) is None
    assert simh_records(ours)[1:] == [FM, FM]
    other = FakeTapeDevice(content=[b"VOL1TAPE01" + bytes(70), FM])
    assert "ANSI" in (tl.foreign_content(StTape("/dev/nst0", io=other)) or "")
    tar = FakeTapeDevice(content=[bytes(10240)])
    assert "not a mkmedia label" in (tl.foreign_content(StTape("/dev/nst0", io=tar)) or "")


def test_obdr_drive_in_cd_emulation_is_found_in_lsscsi() -> None:
    from rescue_runtime.tape.obdr import emulating_drives

    output = (
        "[0:0:0:0]    disk    ATA      QEMU HARDDISK    2.5+  /dev/sda   /dev/sg0\n"
        "[2:0:3:0]    cd/dvd  HP       Ultrium 3-SCSI   G63W  /dev/sr0   /dev/sg1\n"
        "[3:0:0:0]    cd/dvd  QEMU     QEMU DVD-ROM     2.5+  /dev/sr1   /dev/sg2\n"
        "[4:0:5:0]    tape    HP       Ultrium 4-SCSI   H58W  /dev/st0   /dev/sg3\n"
    )
    (drive,) = emulating_drives(output)
    assert (drive.host, drive.cd_device, drive.sg_device) == (2, "/dev/sr0", "/dev/sg1")
    assert drive.model.startswith("Ultrium 3")


def test_the_rescue_system_takes_only_its_own_tape(tmp_path: Path) -> None:
    from rescue_runtime.backup.tapemedium import candidates, matches
    from rescue_runtime.rescueconf import RescueConfig

    config = RescueConfig(hostname="web01.example", medium_id="abcd")
    assert matches(Label("obdr", host="web01", medium_id="ABCD"), config)
    assert not matches(Label("obdr", host="web01", medium_id="OTHER"), config)
    assert matches(Label("plain", host="web01"), config)
    assert not matches(Label("plain", host="db02"), config)
    assert not matches(Label("blank"), config)
    # a disk holding a tape image is a candidate, its partitions and other disks are not
    sys_root, dev = tmp_path / "sys", tmp_path / "dev"
    for name in ("vda", "vdb", "vdb1"):
        (sys_root / "class" / "block" / name).mkdir(parents=True)
    (sys_root / "class" / "block" / "vdb1" / "partition").write_text("1\n")
    dev.mkdir()
    tape = SimhTape(dev / "vdb", write=True)
    tl.write_plain(tape, Label("plain", host="web01"), None)
    tape.close()
    (dev / "vda").write_bytes(bytes(4096))
    (dev / "vdb1").write_bytes((dev / "vdb").read_bytes())
    assert candidates("/dev/nst9", sys_root, dev) == [str(dev / "vdb")]
