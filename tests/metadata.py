"""The one content-and-metadata checker of restored trees (backup round trips, recover's
end-to-end tests): a snapshot of every entry, and the differences between two snapshots.

Per entry: type, mode (incl. setuid/setgid/sticky), numeric owner and group, mtime (ns),
size, sha256 of the content, symlink target, device number, sparseness, the other names of
a hard-linked file, and every xattr (user.*, security.capability, system.posix_acl_*).
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from rescue_runtime.run import run


@dataclass(frozen=True)
class Entry:
    kind: str  # file | dir | symlink | fifo | chr | blk | socket
    mode: int
    uid: int
    gid: int
    mtime_ns: int | None  # None for directories when dir times are not compared
    size: int | None = None
    sha256: str | None = None
    target: str | None = None
    rdev: int | None = None
    sparse: bool = False
    links: tuple[str, ...] = ()  # the other names of the same inode, in the tree
    xattrs: tuple[tuple[str, bytes], ...] = field(default_factory=tuple)


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISREG, "file"),
        (stat.S_ISDIR, "dir"),
        (stat.S_ISLNK, "symlink"),
        (stat.S_ISFIFO, "fifo"),
        (stat.S_ISCHR, "chr"),
        (stat.S_ISBLK, "blk"),
        (stat.S_ISSOCK, "socket"),
    ):
        if test(mode):
            return name
    return "unknown"


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _xattrs(path: str) -> tuple[tuple[str, bytes], ...]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return ()
    return tuple(sorted((n, os.getxattr(path, n, follow_symlinks=False)) for n in names))


def snapshot(
    root: Path, *, skip: tuple[str, ...] = ("lost+found",), dir_times: bool = True
) -> dict[str, Entry]:
    """Every entry under `root` by its relative path ("." is the root itself)."""
    raw: dict[str, os.stat_result] = {}
    top = os.fspath(root)
    for dirpath, dirnames, filenames in os.walk(top):
        rel_dir = os.path.relpath(dirpath, top)
        dirnames[:] = [
            d for d in dirnames if os.path.normpath(os.path.join(rel_dir, d)) not in skip
        ]
        # (os.walk lists symlinks to directories among dirnames; they are entries, not trees)
        raw[rel_dir] = os.lstat(dirpath)
        links = [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
        for name in [*filenames, *links]:
            rel = os.path.normpath(os.path.join(rel_dir, name))
            if rel not in skip:
                raw[rel] = os.lstat(os.path.join(dirpath, name))
    by_inode: dict[tuple[int, int], list[str]] = {}
    for rel, st in raw.items():
        if not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1:
            by_inode.setdefault((st.st_dev, st.st_ino), []).append(rel)
    result = {}
    for rel, st in raw.items():
        full = os.path.join(top, rel)
        kind = _kind(st.st_mode)
        others = by_inode.get((st.st_dev, st.st_ino), [])
        result[rel] = Entry(
            kind=kind,
            mode=stat.S_IMODE(st.st_mode),
            uid=st.st_uid,
            gid=st.st_gid,
            mtime_ns=None if kind == "dir" and not dir_times else st.st_mtime_ns,
            size=st.st_size if kind == "file" else None,
            sha256=_sha256(full) if kind == "file" else None,
            target=os.readlink(full) if kind == "symlink" else None,
            rdev=st.st_rdev if kind in ("chr", "blk") else None,
            sparse=kind == "file" and st.st_blocks * 512 < st.st_size // 2,
            links=tuple(sorted(o for o in others if o != rel)),
            xattrs=_xattrs(full),
        )
    return result


def differences(before: dict[str, Entry], after: dict[str, Entry]) -> list[str]:
    """Human-readable differences; empty when `after` restores `before` exactly."""
    problems = [f"missing: {rel}" for rel in sorted(set(before) - set(after))]
    problems += [f"unexpected: {rel}" for rel in sorted(set(after) - set(before))]
    for rel in sorted(set(before) & set(after)):
        a, b = before[rel], after[rel]
        for name in Entry.__dataclass_fields__:
            if getattr(a, name) != getattr(b, name):
                problems.append(f"{rel}: {name} {getattr(a, name)!r} -> {getattr(b, name)!r}")
    return problems


# The names the rich tree holds that a round trip must keep (leading dash, space, UTF-8).
ODD_NAMES = ("-leading-dash", "name with spaces", "ünïcödé-名前")


def make_rich_tree(root: Path) -> None:
    """A small tree with every kind of entry and metadata a backup must keep (root only)."""
    (root / "a").mkdir()
    (root / "b" / "deep").mkdir(parents=True)
    (root / "empty-dir").mkdir()
    data = root / "a" / "file.txt"
    data.write_bytes(b"content of a file\n" * 100)
    os.link(data, root / "b" / "deep" / "hardlink.txt")  # hard link across directories
    for name in ODD_NAMES:
        (root / name).write_text(f"{name}\n")
    os.symlink("../a/file.txt", root / "b" / "relative-link")
    os.symlink("/etc/hostname", root / "b" / "absolute-link")
    os.symlink("does/not/exist", root / "b" / "dangling-link")
    sparse = root / "sparse.img"
    with open(sparse, "wb") as f:
        f.truncate(64 * 1024 * 1024)
        f.seek(32 * 1024 * 1024)
        f.write(b"data in the middle")
    os.mkfifo(root / "fifo")
    os.mknod(root / "null-device", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    for name, mode in (("setuid", 0o4755), ("setgid", 0o2755)):
        path = root / name
        path.write_bytes(b"#!/bin/sh\n")
        path.chmod(mode)
    (root / "sticky").mkdir()
    (root / "sticky").chmod(0o1777)
    nobody = root / "owned-by-unknown-uid"
    nobody.write_text("whose?\n")
    os.chown(nobody, 54321, 54322)  # ids with no passwd or group entry
    cap = root / "with-capability"
    cap.write_bytes(b"\x7fELF-ish\n")
    run(["setcap", "cap_net_raw+ep", cap])
    os.setxattr(data, "user.origin", b"mkmedia test")
    os.setxattr(root / "b", "user.dir-note", b"a directory xattr")
    # An SELinux label (a kernel without SELinux stores it as a plain security.* xattr).
    os.setxattr(root / "setuid", "security.selinux", b"system_u:object_r:bin_t:s0\0")
    run(["setfacl", "-m", "u:4321:rw,g:4322:r", data])
    run(["setfacl", "-d", "-m", "u:4321:rwx", root / "b"])
    # Fixed times, so a restore that drops them shows.
    for path in (data, root / "b" / "relative-link"):
        os.utime(
            path, ns=(1_600_000_000_000_000_000, 1_600_000_000_123_456_789), follow_symlinks=False
        )
