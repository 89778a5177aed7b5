"""The cpio newc writer and the tree walk: parsed back with a strict reader written here."""

from __future__ import annotations

import hashlib
import io
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import pytest

from mkmedia.initrd import DeviceNode, Entry, TreeScan, iter_tree, pack_tree
from mkmedia.initrd.cpio import CpioWriter, header_bytes
from rescue_runtime.errors import ConfigError, MissingError, MkmediaError

SDE = 1_700_000_000  # SOURCE_DATE_EPOCH used by these tests
OLD = 1_600_000_000  # an mtime before SDE (kept as is)


@dataclass
class Member:
    offset: int
    ino: int
    mode: int
    uid: int
    gid: int
    nlink: int
    mtime: int
    size: int
    devmajor: int
    devminor: int
    rdevmajor: int
    rdevminor: int
    check: int
    name: bytes
    data: bytes


def read_newc(archive: bytes) -> list[Member]:
    """A strict newc reader: every header 4-byte aligned, paddings zero, ends with TRAILER!!!."""
    members: list[Member] = []
    pos = 0
    while True:
        assert pos % 4 == 0, f"header at {pos} is not 4-byte aligned"
        header = archive[pos : pos + 110]
        assert header[:6] == b"070701", f"bad magic at {pos}: {header[:6]!r}"
        digits = header[6:110]
        assert all(c in b"0123456789ABCDEF" for c in digits), digits  # GNU cpio's upper case
        fields = [int(digits[i : i + 8], 16) for i in range(0, 104, 8)]
        namesize = fields[11]
        name_end = pos + 110 + namesize
        name = archive[pos + 110 : name_end]
        assert name.endswith(b"\0") and b"\0" not in name[:-1], name
        data_start = name_end + (-name_end) % 4
        assert archive[name_end:data_start] == b"\0" * (data_start - name_end)
        size = fields[6]
        data = archive[data_start : data_start + size]
        assert len(data) == size, "archive truncated"
        end = data_start + size
        next_pos = end + (-end) % 4
        assert archive[end:next_pos] == b"\0" * (next_pos - end)
        ino, mode, uid, gid, nlink, mtime, _, devmaj, devmin, rdevmaj, rdevmin, _, check = fields
        member = Member(
            pos,
            ino,
            mode,
            uid,
            gid,
            nlink,
            mtime,
            size,
            devmaj,
            devmin,
            rdevmaj,
            rdevmin,
            check,
            name[:-1],
            data,
        )
        if member.name == b"TRAILER!!!":
            assert member.size == 0 and member.mode == 0
            assert next_pos == len(archive), "bytes after the trailer"
            return members
        members.append(member)
        pos = next_pos


def make_tree(root: Path, *, mtime: int = OLD, reverse: bool = False) -> Path:
    """A small tree with every kind of member; `reverse` creates it in the opposite order
    (so a copy gets other inode numbers and directory order)."""
    files: list[tuple[str, bytes, int]] = [
        ("bin/tool", b"#!/bin/sh\necho tool\n", 0o755),
        ("bin/suid", b"x", 0o4755),
        ("etc/secret", b"s3cret\n", 0o600),
        ("etc/empty", b"", 0o644),
        ("etc/a-b", b"dash sorts before slash in byte order\n", 0o644),
        ("usr/lib/big.so", bytes(range(256)) * 4099 + b"xyz", 0o644),
        ("usr/lib/sizes/one", b"1", 0o644),
        ("usr/lib/sizes/four", b"4444", 0o644),
        ("usr/lib/sizes/five", b"55555", 0o644),
        ("usr/share/name with space", b"space\n", 0o644),
        ("usr/share/caf\udce9", b"latin-1 name\n", 0o644),
    ]
    if reverse:
        files.reverse()
    for rel, data, perm in files:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        path.chmod(perm)
    (root / "etc/a").mkdir()  # empty directory
    (root / "etc/a").chmod(0o700)
    # A hard-link group of three across directories, and an empty hard-linked pair.
    os.link(root / "usr/lib/big.so", root / "bin/big-link")
    os.link(root / "usr/lib/big.so", root / "usr/big-link2")
    os.link(root / "etc/empty", root / "etc/empty-link")
    os.symlink("tool", root / "bin/rel-link")
    os.symlink("/usr/lib/big.so", root / "usr/abs-link")
    os.symlink("../nowhere", root / "usr/dangling")
    os.symlink("usr/lib", root / "lib")
    os.mkfifo(root / "etc/fifo", 0o640)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.utime(os.path.join(dirpath, name), (mtime, mtime), follow_symlinks=False)
    return root


def pack_bytes(tree: Path, tmp: Path, **kwargs: object) -> bytes:
    out = tmp / "out.cpio"
    pack_tree(tree, out, compression="none", **kwargs)  # type: ignore[arg-type]
    return out.read_bytes()


def by_name(members: list[Member]) -> dict[bytes, Member]:
    return {m.name: m for m in members}


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "tree")


def test_header_layout_and_alignment() -> None:
    for length in range(1, 9):  # every name padding case
        entry = Entry(name="n" * length, mode=0o100644, ino=7, nlink=1, mtime=0x5F5E1000, size=3)
        head = header_bytes(entry)
        assert len(head) % 4 == 0
        assert head[:6] == b"070701"
        assert head[6:14] == b"00000007"  # ino
        assert head[14:22] == b"000081A4"  # mode
        assert head[46:54] == b"5F5E1000"  # mtime
        assert head[54:62] == b"00000003"  # filesize
        assert head[62:78] == b"0" * 16  # devmajor, devminor zeroed
        assert int(head[94:102], 16) == length + 1  # namesize counts the NUL
        assert head[110 : 110 + length + 1] == b"n" * length + b"\0"
        assert set(head[110 + length + 1 :]) <= {0}


def test_header_rejects_values_newc_cannot_hold() -> None:
    with pytest.raises(MkmediaError, match="32 bits"):
        header_bytes(Entry(name="huge", mode=0o100644, ino=1, size=1 << 32))
    with pytest.raises(MkmediaError, match="4095 bytes"):
        header_bytes(Entry(name="d/" * 2100, mode=0o100644, ino=1))


def test_writer_streams_in_chunks_and_pads(tmp_path: Path) -> None:
    data = os.urandom(1001)
    src = tmp_path / "f"
    src.write_bytes(data)
    sink = io.BytesIO()
    writer = CpioWriter(sink, chunk_size=7)  # many partial chunks
    writer.add(Entry(name="f", mode=0o100644, ino=1, size=len(data), source=src))
    writer.add(Entry(name="l", mode=0o120777, ino=2, size=1, link_target=b"f"))
    writer.finish()
    members = read_newc(sink.getvalue())
    assert [m.data for m in members] == [data, b"f"]
    assert writer.entries == 2 and writer.bytes_written == len(sink.getvalue())


def test_writer_detects_a_file_that_changed_size(tmp_path: Path) -> None:
    src = tmp_path / "f"
    src.write_bytes(b"short")
    for size in (4, 9):  # grew and shrank since it was measured
        writer = CpioWriter(io.BytesIO())
        with pytest.raises(MkmediaError, match="changed size"):
            writer.add(Entry(name="f", mode=0o100644, ino=1, size=size, source=src))


def test_archive_members_order_and_values(tree: Path, tmp_path: Path) -> None:
    members = read_newc(pack_bytes(tree, tmp_path, source_date_epoch=SDE))
    names = [m.name for m in members]
    # Depth first with names sorted bytewise: parents before children, locale-independent.
    assert names == [
        b"bin",
        b"bin/big-link",
        b"bin/rel-link",
        b"bin/suid",
        b"bin/tool",
        b"dev",
        b"dev/console",
        b"dev/null",
        b"dev/random",
        b"dev/urandom",
        b"dev/zero",
        b"etc",
        b"etc/a",
        b"etc/a-b",
        b"etc/empty",
        b"etc/empty-link",
        b"etc/fifo",
        b"etc/secret",
        b"lib",
        b"usr",
        b"usr/abs-link",
        b"usr/big-link2",
        b"usr/dangling",
        b"usr/lib",
        b"usr/lib/big.so",
        b"usr/lib/sizes",
        b"usr/lib/sizes/five",
        b"usr/lib/sizes/four",
        b"usr/lib/sizes/one",
        b"usr/share",
        b"usr/share/caf\xe9",
        b"usr/share/name with space",
    ]
    assert names == [os.fsencode(e.name) for e in iter_tree(tree, source_date_epoch=SDE)]
    for m in members:
        assert (m.devmajor, m.devminor, m.check) == (0, 0, 0)
        assert (m.uid, m.gid) == (0, 0)
        assert m.mtime == (SDE if m.name.startswith(b"dev") else OLD)
    # Inode numbers: sequential in archive order, a hard-link group shares the first one's.
    seen: dict[int, None] = {}
    for m in members:
        seen.setdefault(m.ino)
    assert list(seen) == list(range(1, len(seen) + 1))

    got = by_name(members)
    for m in members:
        path = tree / os.fsdecode(m.name)
        if m.name.startswith(b"dev"):
            continue
        st = path.lstat()
        assert m.mode == st.st_mode, m.name
        if stat.S_ISREG(st.st_mode) and st.st_nlink == 1:
            assert m.data == path.read_bytes() and m.nlink == 1
        elif stat.S_ISLNK(st.st_mode):
            assert m.data == os.fsencode(os.readlink(path))
        elif stat.S_ISDIR(st.st_mode):
            subdirs = sum(1 for c in path.iterdir() if c.is_dir() and not c.is_symlink())
            assert m.nlink == 2 + subdirs and m.size == 0
    assert got[b"etc/a"].mode == stat.S_IFDIR | 0o700
    assert got[b"bin/suid"].mode == stat.S_IFREG | 0o4755
    assert stat.S_ISFIFO(got[b"etc/fifo"].mode) and got[b"etc/fifo"].size == 0
    assert got[b"lib"].data == b"usr/lib" and stat.S_ISLNK(got[b"lib"].mode)
    assert got[b"usr/dangling"].data == b"../nowhere"

    # Hard links: one ino, nlink = links in the archive, data stored once, with the last one.
    group = [got[b"bin/big-link"], got[b"usr/big-link2"], got[b"usr/lib/big.so"]]
    assert len({m.ino for m in group}) == 1
    assert all(m.nlink == 3 for m in group)
    assert [m.size for m in group[:2]] == [0, 0]
    assert group[2].data == (tree / "usr/lib/big.so").read_bytes()
    empty = [got[b"etc/empty"], got[b"etc/empty-link"]]
    assert empty[0].ino == empty[1].ino and {m.nlink for m in empty} == {2}

    console, null = got[b"dev/console"], got[b"dev/null"]
    assert console.mode == stat.S_IFCHR | 0o600 and (console.rdevmajor, console.rdevminor) == (5, 1)
    assert null.mode == stat.S_IFCHR | 0o666 and (null.rdevmajor, null.rdevminor) == (1, 3)
    assert got[b"dev"].mode == stat.S_IFDIR | 0o755


def test_result_counts_match_the_archive(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "initrd.cpio"
    result = pack_tree(tree, out, compression="none")
    data = out.read_bytes()
    assert result.entries == len(read_newc(data))
    assert result.uncompressed_bytes == result.compressed_bytes == len(data)
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")] == []


def test_mtimes_clamped_only_downwards(tree: Path, tmp_path: Path) -> None:
    later = {m.name: m.mtime for m in read_newc(pack_bytes(tree, tmp_path, source_date_epoch=SDE))}
    earlier = read_newc(pack_bytes(tree, tmp_path, source_date_epoch=OLD - 10))
    unclamped = read_newc(pack_bytes(tree, tmp_path))
    assert later[b"bin/tool"] == OLD
    assert {m.mtime for m in earlier} == {OLD - 10}
    assert {m.mtime for m in unclamped if not m.name.startswith(b"dev")} == {OLD}


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_owners_normalised_or_kept(tree: Path, tmp_path: Path) -> None:
    os.chown(tree / "etc/secret", 1234, 5678)
    kept = by_name(read_newc(pack_bytes(tree, tmp_path, normalize_owners=False)))
    assert (kept[b"etc/secret"].uid, kept[b"etc/secret"].gid) == (1234, 5678)
    assert (kept[b"dev/console"].uid, kept[b"dev/console"].gid) == (0, 0)
    normal = by_name(read_newc(pack_bytes(tree, tmp_path)))
    assert (normal[b"etc/secret"].uid, normal[b"etc/secret"].gid) == (0, 0)


@pytest.mark.skipif(os.geteuid() != 0, reason="mknod needs root")
def test_real_device_nodes_and_overrides(tree: Path, tmp_path: Path) -> None:
    (tree / "dev").mkdir()
    os.mknod(tree / "dev/sda", stat.S_IFBLK | 0o660, os.makedev(8, 0))
    os.chmod(tree / "dev/sda", 0o660)  # mknod applies the umask
    os.mknod(tree / "dev/console", stat.S_IFCHR | 0o644, os.makedev(4, 64))
    got = by_name(read_newc(pack_bytes(tree, tmp_path)))
    sda = got[b"dev/sda"]
    assert sda.mode == stat.S_IFBLK | 0o660 and (sda.rdevmajor, sda.rdevminor) == (8, 0)
    # The requested node wins over what the tree holds at the same path.
    assert (got[b"dev/console"].rdevmajor, got[b"dev/console"].rdevminor) == (5, 1)


def test_extra_nodes_choice(tree: Path, tmp_path: Path) -> None:
    none = [m.name for m in read_newc(pack_bytes(tree, tmp_path, extra_nodes=()))]
    assert not any(n.startswith(b"dev") for n in none)
    deep = DeviceNode("/x/y/tty0", "c", 4, 0, 0o620)
    got = by_name(read_newc(pack_bytes(tree, tmp_path, extra_nodes=[deep])))
    assert got[b"x"].mode == got[b"x/y"].mode == stat.S_IFDIR | 0o755
    assert got[b"x"].nlink == 3 and got[b"x/y"].nlink == 2
    assert got[b"x/y/tty0"].mode == stat.S_IFCHR | 0o620
    assert b"dev/console" not in got


def test_extra_nodes_rejected(tree: Path, tmp_path: Path) -> None:
    (tree / "dev").write_text("not a directory")
    with pytest.raises(ConfigError, match="not a directory"):
        pack_bytes(tree, tmp_path)
    for bad in (
        DeviceNode("../escape", "c", 1, 3),
        DeviceNode("dev/x", "p", 1, 3),
        DeviceNode("dev/x", "c", 4096, 0),
    ):
        with pytest.raises(ConfigError):
            pack_bytes(tree, tmp_path, extra_nodes=[bad])


def copy_tree(src: Path, dst: Path) -> None:
    """Copy keeping content, modes, symlinks and hard links, with new inodes and mtimes."""
    links: dict[tuple[int, int], Path] = {}
    for dirpath, dirnames, filenames in sorted(os.walk(src), reverse=True):
        rel = Path(dirpath).relative_to(src)
        (dst / rel).mkdir(parents=True, exist_ok=True)
        for name in sorted(dirnames + filenames, reverse=True):
            s, d = Path(dirpath, name), dst / rel / name
            st = s.lstat()
            if stat.S_ISDIR(st.st_mode):
                d.mkdir(exist_ok=True)
            elif stat.S_ISLNK(st.st_mode):
                d.symlink_to(os.readlink(s))
            elif stat.S_ISFIFO(st.st_mode):
                os.mkfifo(d, stat.S_IMODE(st.st_mode))
            elif stat.S_ISREG(st.st_mode):
                key = (st.st_dev, st.st_ino)
                if key in links:
                    os.link(links[key], d)
                else:
                    d.write_bytes(s.read_bytes())
                    links[key] = d
            if not stat.S_ISLNK(st.st_mode):
                os.chmod(d, stat.S_IMODE(st.st_mode))
    for path in [dst, *dst.rglob("*")]:
        os.utime(path, (SDE + 12345, SDE + 12345), follow_symlinks=False)


@pytest.mark.parametrize("compression", ["none", "zstd", "gzip", "xz"])
def test_reproducible(tmp_path: Path, compression: str) -> None:
    tree = make_tree(tmp_path / "tree", mtime=SDE + 100)  # built after SOURCE_DATE_EPOCH
    first = pack_tree(tree, tmp_path / "a", compression=compression, source_date_epoch=SDE)
    second = pack_tree(tree, tmp_path / "b", compression=compression, source_date_epoch=SDE)
    assert first.sha256 == second.sha256
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()
    # A copy made later: other inode numbers, creation order and mtimes.
    copy = tmp_path / "copy"
    copy_tree(tree, copy)
    assert (copy / "bin/tool").stat().st_ino != (tree / "bin/tool").stat().st_ino
    assert (copy / "bin/big-link").stat().st_nlink == 3
    third = pack_tree(copy, tmp_path / "c", compression=compression, source_date_epoch=SDE)
    assert third.sha256 == first.sha256
    # Without the clamp the copy's later mtimes show, so the check above can fail.
    fourth = pack_tree(copy, tmp_path / "d", compression=compression)
    assert fourth.sha256 != first.sha256


def test_unusable_inputs(tree: Path, tmp_path: Path) -> None:
    with pytest.raises(MissingError, match="not a directory"):
        pack_tree(tmp_path / "missing", tmp_path / "out")
    with pytest.raises(MissingError, match="does not exist"):
        pack_tree(tree, tmp_path / "no/such/dir/out")
    with pytest.raises(ConfigError, match="inside the tree"):
        pack_tree(tree, tree / "initrd")
    with pytest.raises(ConfigError, match="SOURCE_DATE_EPOCH"):
        pack_tree(tree, tmp_path / "out", source_date_epoch=-1)


def test_failure_leaves_no_partial_output(tree: Path, tmp_path: Path) -> None:
    with open(tree / "usr/huge", "wb") as handle:  # sparse: no disk space used
        handle.truncate((4 << 30) + 1)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(MkmediaError, match="usr/huge"):
        pack_tree(tree, out_dir / "initrd", compression="none")
    assert list(out_dir.iterdir()) == []


def test_progress_bar_counts_the_whole_archive(
    tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    quiet = pack_tree(tree, tmp_path / "a", compression="none")
    shown = pack_tree(tree, tmp_path / "b", compression="none", progress=True)
    assert shown.sha256 == quiet.sha256
    err = capsys.readouterr().err
    assert "initrd (none): 100%" in err
    # The bar's total, computed by the first pass before packing, is the archive's exact size.
    scan = TreeScan(tree)
    assert scan.archive_bytes == quiet.uncompressed_bytes
    assert scan.entries == quiet.entries
