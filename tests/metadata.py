"""Round-trip checks of restored trees on top of the one content-and-metadata checker,
tests/e2e/treemanifest.py (which recover's end-to-end tests run inside their guests), and
the rich tree a backup must bring back whole.

Entries are keyed by their path relative to the tree's top ("." is the top itself), so a
tree restored into another directory compares with the original.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path

from rescue_runtime.run import run
from tests.e2e import treemanifest

Entries = dict[str, dict[str, object]]


def snapshot(
    top: Path, *, skip: Sequence[str] = ("lost+found",), subtrees: Sequence[str] = ()
) -> Entries:
    """treemanifest's entries of `top` (and of `subtrees` below it, which sit on other file
    systems such as btrfs subvolumes), `skip` (paths relative to `top`) left out."""
    roots = [str(top), *(str(top / sub) for sub in subtrees)]
    manifest = treemanifest.record(roots, [f"{top}/{name}" for name in skip])
    entries = manifest["entries"]
    assert isinstance(entries, dict)
    result: Entries = {}
    for path, entry in entries.items():
        entry = dict(entry)
        if "link_group" in entry:
            entry["link_group"] = os.path.relpath(str(entry["link_group"]), top)
        result[os.path.relpath(path, top)] = entry
    return result


def differences(before: Entries, after: Entries) -> list[str]:
    """treemanifest's differences, one line each; empty when `after` restores `before`."""
    return treemanifest.compare({"entries": before}, {"entries": after})


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
