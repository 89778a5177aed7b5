"""The packed initrd unpacked by independent tools (GNU cpio, BusyBox cpio, zstd, gzip, xz)
and compared with the tree it came from."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from mkmedia.initrd import pack_tree
from mkmedia.initrd.tree import DEFAULT_DEVICE_NODES
from rescue_runtime.run import run, which

pytestmark = pytest.mark.integration

SDE = 1_700_000_000
IS_ROOT = os.geteuid() == 0


def build_tree(root: Path) -> Path:
    """Every kind of member the rescue tree holds; mtimes both before and after SDE."""
    big = os.urandom(1 << 16) * 40 + b"tail"  # 2.5 MiB, crosses the packer's 1 MiB chunks
    for rel, data, perm in [
        ("usr/bin/tool", b"#!/bin/sh\necho hi\n", 0o755),
        ("usr/bin/suid", b"suid", 0o4755),
        ("usr/lib/libbig.so.1", big, 0o644),
        ("etc/shadow", b"root:*:1::::::\n", 0o640),
        ("etc/empty", b"", 0o644),
        ("etc/odd name \t tab", b"odd\n", 0o644),
    ]:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        path.chmod(perm)
    (root / "var/empty").mkdir(parents=True)
    (root / "var/empty").chmod(0o711)
    os.link(root / "usr/lib/libbig.so.1", root / "usr/bin/big-a")
    os.link(root / "usr/lib/libbig.so.1", root / "var/big-b")
    os.symlink("usr/lib", root / "lib")
    os.symlink("libbig.so.1", root / "usr/lib/libbig.so")
    os.symlink("/etc/missing", root / "etc/dangling")
    os.mkfifo(root / "var/fifo", 0o600)
    os.chmod(root / "var/fifo", 0o600)
    if IS_ROOT:
        os.chown(root / "etc/shadow", 1234, 42)  # normalised to 0:0 in the archive
    for n, path in enumerate(sorted(root.rglob("*"))):
        when = SDE - 1000 + n if n % 2 else SDE + 1000  # half of them get clamped
        os.utime(path, (when, when), follow_symlinks=False)
    return root


def snapshot(root: Path, *, clamp: int | None = None) -> dict[str, tuple[object, ...]]:
    """What must survive a pack/unpack: type, mode, target or content, device, mtime."""
    seen: dict[str, tuple[object, ...]] = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        rel = str(path.relative_to(root))
        mtime: int | None = int(st.st_mtime)
        if stat.S_ISLNK(st.st_mode):
            what: object = os.readlink(path)
        elif stat.S_ISREG(st.st_mode):
            what = path.read_bytes()
        elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            what = (os.major(st.st_rdev), os.minor(st.st_rdev))
        else:
            what = None
        # cpio restores neither a symlink's own mtime nor that of a directory it then fills
        # (the archive's directory mtimes are checked by the unit tests' reader).
        if stat.S_ISLNK(st.st_mode) or stat.S_ISDIR(st.st_mode):
            mtime = None
        elif clamp is not None and mtime is not None:
            mtime = min(mtime, clamp)
        seen[rel] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), what, mtime)
    return seen


def unpack(archive: Path, compression: str, dest: Path, extractor: str) -> None:
    cpio = dest.parent / "archive.cpio"
    if compression == "zstd":
        run(["zstd", "-d", "-q", "-f", "-o", cpio, archive], what="decompressing the initrd")
    elif compression in ("gzip", "xz"):
        tool = "gzip" if compression == "gzip" else "xz"
        copy = dest.parent / ("archive.cpio.gz" if tool == "gzip" else "archive.cpio.xz")
        copy.write_bytes(archive.read_bytes())
        run([tool, "-d", "-f", copy], what="decompressing the initrd")
    dest.mkdir()
    if extractor == "gnu":
        run(["cpio", "-idm", "--no-absolute-filenames", "-F", cpio], cwd=dest, what="unpacking")
    else:
        run(["busybox", "cpio", "-i", "-d", "-m", "-F", cpio], cwd=dest, what="unpacking")


@pytest.mark.parametrize(
    ("compression", "extractor"),
    [("zstd", "gnu"), ("zstd", "busybox"), ("gzip", "gnu"), ("xz", "gnu")],
)
def test_unpacked_tree_matches(tmp_path: Path, compression: str, extractor: str) -> None:
    for tool in ("cpio", "zstd", "gzip", "xz", "busybox"):
        if which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    tree = build_tree(tmp_path / "tree")
    initrd = tmp_path / "initrd.img"
    # Device nodes can be unpacked only by root; a non-root run leaves them out.
    nodes = None if IS_ROOT else ()
    result = pack_tree(
        tree, initrd, compression=compression, source_date_epoch=SDE, extra_nodes=nodes
    )
    dest = tmp_path / "unpacked"
    unpack(initrd, compression, dest, extractor)

    expected = snapshot(tree, clamp=SDE)
    if IS_ROOT:
        expected["dev"] = (stat.S_IFDIR, 0o755, None, None)
        for node in DEFAULT_DEVICE_NODES:
            expected[node.name] = (stat.S_IFCHR, node.perm, (node.major, node.minor), SDE)
    got = snapshot(dest)
    assert sorted(got) == sorted(expected)
    for name in expected:
        assert got[name] == expected[name], name
    assert result.entries == len(expected)

    # The hard-link group comes back as one inode with three names, its data stored once.
    inodes = {
        (dest / p).stat().st_ino for p in ("usr/lib/libbig.so.1", "usr/bin/big-a", "var/big-b")
    }
    assert len(inodes) == 1
    assert (dest / "var/big-b").stat().st_nlink == 3
    assert result.uncompressed_bytes < 2 * (tree / "usr/lib/libbig.so.1").stat().st_size
    if IS_ROOT:
        assert {(p.lstat().st_uid, p.lstat().st_gid) for p in dest.rglob("*")} == {(0, 0)}


def test_gnu_cpio_lists_the_archive_like_ours(tmp_path: Path) -> None:
    tree = build_tree(tmp_path / "tree")
    initrd = tmp_path / "initrd.cpio"
    pack_tree(tree, initrd, compression="none", source_date_epoch=SDE)
    listed = run(["cpio", "-t", "--quiet", "-F", initrd]).stdout.splitlines()
    names = sorted(str(p.relative_to(tree)) for p in tree.rglob("*"))
    nodes = [node.name for node in DEFAULT_DEVICE_NODES]
    assert sorted(listed) == sorted([*names, "dev", *nodes])
    # Parents come before their children in the archive.
    position = {name: i for i, name in enumerate(listed)}
    for name in listed:
        if "/" in name:
            assert position[name.rsplit("/", 1)[0]] < position[name], name


def test_xz_stream_check_is_crc32(tmp_path: Path) -> None:
    tree = build_tree(tmp_path / "tree")
    initrd = tmp_path / "initrd.xz"
    pack_tree(tree, initrd, compression="xz")
    listing = run(["xz", "--robot", "--list", initrd]).stdout
    line = next(line for line in listing.splitlines() if line.startswith("file\t"))
    assert line.split("\t")[6] == "CRC32"  # the kernel's XZ decoder has no CRC64
