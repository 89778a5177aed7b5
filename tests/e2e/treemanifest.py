#!/usr/bin/env python3
"""Record and compare the content and metadata of directory trees (standard library only).

Runs on the host and inside test guests (copied there as a script): `record ROOT...` writes a
JSON manifest of every entry below the roots; `compare MANIFEST ROOT...` re-reads the trees and
prints every difference, exit 1 when there is one. What a recovery must bring back: type,
mode (setuid/setgid/sticky included), owner and group by number, size, mtime, content,
symlink targets (dangling ones too), device numbers, hard-link groups, sparseness, and every
extended attribute (user.*, security.capability, system.posix_acl_*).
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import os
import stat
import sys
from collections.abc import Iterator, Sequence

BLOCK = 1 << 16
VERSION = 1


def content_hash(path: str, size: int) -> str:
    """sha256 of the non-zero 64 KiB blocks with their offsets: sparse and dense copies of the
    same bytes agree, and reading skips holes (SEEK_DATA) so a large sparse file is cheap."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        fd = handle.fileno()
        offset = 0
        while offset < size:
            try:
                offset = os.lseek(fd, offset, os.SEEK_DATA)
            except OSError:  # ENXIO: only a hole remains
                break
            offset -= offset % BLOCK
            handle.seek(offset)
            block = handle.read(BLOCK)
            if not block:
                break
            if block.strip(b"\0"):  # all-zero blocks count as holes
                digest.update(offset.to_bytes(8, "little") + block)
            offset += len(block)
    return digest.hexdigest()


def xattrs(path: str) -> dict[str, str]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    result = {}
    for name in sorted(names):
        try:
            result[name] = os.getxattr(path, name, follow_symlinks=False).hex()
        except OSError as exc:
            result[name] = f"<unreadable: {exc.strerror}>"
    return result


def kind(mode: int) -> str:
    for test, letter in (
        (stat.S_ISREG, "f"),
        (stat.S_ISDIR, "d"),
        (stat.S_ISLNK, "l"),
        (stat.S_ISFIFO, "p"),
        (stat.S_ISCHR, "c"),
        (stat.S_ISBLK, "b"),
        (stat.S_ISSOCK, "s"),
    ):
        if test(mode):
            return letter
    return "?"


def walk(root: str, excludes: Sequence[str]) -> Iterator[str]:
    """Every path below root (root included), not crossing into other file systems."""
    root_dev = os.lstat(root).st_dev
    stack = [root]
    while stack:
        path = stack.pop()
        if any(fnmatch.fnmatch(path, pattern) for pattern in excludes):
            continue
        yield path
        st = os.lstat(path)
        if stat.S_ISDIR(st.st_mode) and st.st_dev == root_dev:
            with os.scandir(path) as entries:
                stack.extend(sorted((e.path for e in entries), reverse=True))


def describe(path: str, st: os.stat_result) -> dict[str, object]:
    entry: dict[str, object] = {
        "type": kind(st.st_mode),
        "mode": f"{stat.S_IMODE(st.st_mode):04o}",
        "uid": st.st_uid,
        "gid": st.st_gid,
        "xattrs": xattrs(path),
    }
    if stat.S_ISREG(st.st_mode):
        entry["size"] = st.st_size
        entry["sha256"] = content_hash(path, st.st_size)
        # Sparse: far fewer bytes allocated than the file's length (1 MiB of slack for
        # file-system metadata blocks and tail packing).
        entry["sparse"] = st.st_blocks * 512 + (1 << 20) < st.st_size
    if not stat.S_ISLNK(st.st_mode):
        entry["mtime_ns"] = st.st_mtime_ns
    if stat.S_ISLNK(st.st_mode):
        entry["target"] = os.readlink(path)
    if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        entry["rdev"] = [os.major(st.st_rdev), os.minor(st.st_rdev)]
    return entry


def record(
    roots: Sequence[str],
    excludes: Sequence[str],
    under: str = "",
    mtime_free: Sequence[str] = (),
) -> dict[str, object]:
    """The manifest of the roots; with `under`, of a copy of them below that directory (a
    restore into a directory), keyed by the original paths so the two manifests compare.
    `mtime_free`: globs of paths whose mtime may change (compare checks all else of them)."""
    entries: dict[str, dict[str, object]] = {}
    inodes: dict[tuple[int, int], list[str]] = {}
    base = os.path.abspath(under) if under else ""
    for root in roots:
        for real in walk(base + os.path.abspath(root), [base + p for p in excludes]):
            path = real[len(base) :] or "/"
            st = os.lstat(real)
            entries[path] = describe(real, st)
            if not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1:
                inodes.setdefault((st.st_dev, st.st_ino), []).append(path)
    # A hard-link group is named by its first path; every member carries the name.
    for group in inodes.values():
        first = min(group)
        for path in group:
            entries[path]["link_group"] = first
    return {
        "version": VERSION,
        "roots": list(roots),
        "excludes": list(excludes),
        "mtime_free": list(mtime_free),
        "entries": entries,
    }


def compare(expected: dict[str, object], actual: dict[str, object]) -> list[str]:
    """Differences between two manifests, one line each; empty when they agree."""
    want = expected["entries"]
    have = actual["entries"]
    assert isinstance(want, dict) and isinstance(have, dict)
    mtime_free = expected.get("mtime_free", [])
    assert isinstance(mtime_free, list)
    problems = []
    for path in sorted(set(want) - set(have)):
        problems.append(f"missing: {path}")
    for path in sorted(set(have) - set(want)):
        problems.append(f"unexpected: {path}")
    for path in sorted(set(want) & set(have)):
        a, b = want[path], have[path]
        free = any(fnmatch.fnmatch(path, pattern) for pattern in mtime_free)
        for key in sorted(set(a) | set(b)):
            if free and key == "mtime_ns":
                continue
            if a.get(key) != b.get(key):
                problems.append(f"changed: {path} {key}: {a.get(key)!r} -> {b.get(key)!r}")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record", help="write the manifest of ROOT... to stdout or -o FILE")
    rec.add_argument("roots", nargs="+")
    rec.add_argument("-o", "--output")
    rec.add_argument("--exclude", action="append", default=[], help="glob of absolute paths")
    cmp_ = sub.add_parser("compare", help="compare ROOT... with MANIFEST; exit 1 on a difference")
    cmp_.add_argument("manifest")
    cmp_.add_argument("roots", nargs="*", help="default: the manifest's own roots")
    cmp_.add_argument("--under", default="", help="the trees were restored below this directory")
    args = parser.parse_args(argv)
    if args.command == "record":
        text = json.dumps(record(args.roots, args.exclude), indent=1, sort_keys=True)
        if args.output:
            with open(args.output + ".partial", "w") as out:
                out.write(text + "\n")
            os.replace(args.output + ".partial", args.output)
        else:
            print(text)
        return 0
    with open(args.manifest) as handle:
        expected = json.load(handle)
    actual = record(
        args.roots or expected["roots"],
        expected["excludes"],
        args.under,
        expected.get("mtime_free", []),
    )
    problems = compare(expected, actual)
    for line in problems:
        print(line)
    entries = expected["entries"]
    print(f"treemanifest: {len(entries)} entries, {len(problems)} differences")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
