"""Walk a rescue tree in archive order and describe each member as a cpio Entry.

Order: depth first, the names of each directory sorted by their bytes, so parents come before
children and the order does not depend on the locale or the file system. Everything that
varies between two builds of the same content is normalised: inode numbers are assigned in
that order, directory link counts are recomputed, owners can be set to 0:0 and mtimes are
clamped to SOURCE_DATE_EPOCH. The tree root itself is not an entry: the kernel's rootfs
already exists (mode 0755) and a build directory's own mode (often 0700) must not leak into it.

Memory stays bounded by the widest directory and the number of hard-linked files, never by
the size of the tree.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from mkmedia.initrd.cpio import TRAILER_ENTRY, Entry, entry_length, header_bytes
from rescue_runtime.errors import ConfigError, MissingError, MkmediaError


@dataclass(frozen=True)
class DeviceNode:
    """A device node added to the archive whether or not the tree has it.

    Non-root builds cannot create device nodes, yet the kernel needs /dev/console before
    /init runs (it opens it for init's stdin/stdout); such nodes go into the archive directly.
    Missing parent directories are added with mode 0755.
    """

    path: str  # inside the archive: "dev/console" (a leading "/" is accepted)
    kind: str  # "c" (character) or "b" (block)
    major: int
    minor: int
    perm: int = 0o600

    @property
    def name(self) -> str:
        return self.path.strip("/")


DEFAULT_DEVICE_NODES: tuple[DeviceNode, ...] = (
    DeviceNode("dev/console", "c", 5, 1, 0o600),
    DeviceNode("dev/null", "c", 1, 3, 0o666),
    # before /init mounts devtmpfs: CPython reads /dev/urandom when getrandom() would block
    DeviceNode("dev/random", "c", 1, 8, 0o666),
    DeviceNode("dev/urandom", "c", 1, 9, 0o666),
    DeviceNode("dev/zero", "c", 1, 5, 0o666),
)

SYNTHETIC_DIR_MODE = stat.S_IFDIR | 0o755


@dataclass(frozen=True)
class _Item:
    """One walked path before normalisation: a real file or a synthetic node/directory."""

    name: str
    path: Path | None = None
    st: os.stat_result | None = None
    node: DeviceNode | None = None
    subdirs: int = 0  # for directories: subdirectories in the archive (sets nlink)

    @property
    def is_dir(self) -> bool:
        if self.node is not None:
            return False
        return self.st is None or stat.S_ISDIR(self.st.st_mode)


# Per directory (archive name, "" for the root): child name -> node, or None for a directory.
_Overlay = dict[str, dict[str, DeviceNode | None]]


def _overlay(nodes: Iterable[DeviceNode]) -> _Overlay:
    overlay: _Overlay = {}
    for node in nodes:
        parts = node.name.split("/")
        if not node.name or any(p in ("", ".", "..") for p in parts):
            raise ConfigError(
                f"The device node path {node.path!r} is not a plain relative path inside the "
                "initrd.",
                hint="Use a path like 'dev/console'.",
            )
        if node.kind not in ("c", "b"):
            raise ConfigError(
                f"The device node {node.path!r} has kind {node.kind!r}; use 'c' (character) "
                "or 'b' (block)."
            )
        if not (0 <= node.major < 1 << 12 and 0 <= node.minor < 1 << 20):
            raise ConfigError(
                f"The device node {node.path!r} has number {node.major}:{node.minor}, outside "
                "Linux's range (major < 4096, minor < 1048576)."
            )
        if not 0 <= node.perm <= 0o7777:
            raise ConfigError(f"The device node {node.path!r} has invalid permissions.")
        for depth in range(len(parts) - 1):
            parent = "/".join(parts[:depth])
            overlay.setdefault(parent, {})[parts[depth]] = None
        overlay.setdefault("/".join(parts[:-1]), {})[parts[-1]] = node
    return overlay


def _join(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name


def _list(tree: Path, item: _Item, overlay: _Overlay) -> list[_Item]:
    """The children of a directory item, sorted by the bytes of their names."""
    found: dict[str, _Item] = {}
    if item.path is not None:
        try:
            with os.scandir(item.path) as listing:
                for child in listing:
                    found[child.name] = _Item(
                        _join(item.name, child.name),
                        Path(child.path),
                        child.stat(follow_symlinks=False),
                    )
        except OSError as exc:
            raise MkmediaError(
                f"Cannot read the directory {item.path} of the rescue tree: {exc.strerror}.",
                hint="Check its permissions; the initrd packer must read the whole tree.",
            ) from exc
    for name, node in overlay.get(item.name, {}).items():
        existing = found.get(name)
        if node is not None:
            found[name] = _Item(_join(item.name, name), node=node)  # the requested node wins
        elif existing is None:
            found[name] = _Item(_join(item.name, name))  # synthetic directory
        elif not existing.is_dir:
            raise ConfigError(
                f"Cannot add device nodes under {existing.path}: it is not a directory in "
                f"the rescue tree {tree}.",
                hint="Make it a directory, or drop the device nodes below it.",
            )
    return [found[name] for name in sorted(found, key=os.fsencode)]


def _walk(tree: Path, overlay: _Overlay) -> Iterator[_Item]:
    """Depth-first, sorted; a directory comes with the count of its subdirectories."""
    stack: list[Iterator[_Item]] = [iter(_list(tree, _Item("", tree), overlay))]
    while stack:
        item = next(stack[-1], None)
        if item is None:
            stack.pop()
            continue
        if item.is_dir:
            children = _list(tree, item, overlay)
            subdirs = sum(1 for child in children if child.is_dir)
            yield _Item(item.name, item.path, item.st, subdirs=subdirs)
            stack.append(iter(children))
        else:
            yield item


class TreeScan:
    """A rescue tree prepared for packing: a first pass counts entries and bytes and finds
    the hard-link groups; iterating walks the tree again and yields the entries.
    """

    def __init__(
        self,
        tree: Path,
        *,
        source_date_epoch: int | None = None,
        normalize_owners: bool = True,
        extra_nodes: Sequence[DeviceNode] | None = None,
    ) -> None:
        self.tree = Path(tree)
        if not self.tree.is_dir():
            raise MissingError(
                f"The rescue tree {self.tree} to pack into the initrd is not a directory.",
                hint="Build the rescue tree first, or check the path.",
            )
        if source_date_epoch is not None and source_date_epoch < 0:
            raise ConfigError(f"SOURCE_DATE_EPOCH must not be negative (got {source_date_epoch}).")
        self.source_date_epoch = source_date_epoch
        self.normalize_owners = normalize_owners
        nodes = DEFAULT_DEVICE_NODES if extra_nodes is None else tuple(extra_nodes)
        self._overlay = _overlay(nodes)
        # (st_dev, st_ino) -> archive names, for regular files linked more than once in the tree
        self._links: dict[tuple[int, int], list[str]] = {}
        self.entries = 0
        self.archive_bytes = 0  # the uncompressed archive, trailer included
        self._first_pass()

    def _first_pass(self) -> None:
        links: dict[tuple[int, int], list[str]] = {}
        sizes: dict[tuple[int, int], int] = {}
        data = 0
        for item in _walk(self.tree, self._overlay):
            self.entries += 1
            self.archive_bytes += entry_length(Entry(name=item.name, mode=0, ino=0))
            st = item.st
            if st is None or item.node is not None:
                continue
            if stat.S_ISREG(st.st_mode):
                if st.st_nlink > 1:
                    key = (st.st_dev, st.st_ino)
                    links.setdefault(key, []).append(item.name)
                    sizes[key] = st.st_size
                else:
                    data += st.st_size + (-st.st_size) % 4
            elif stat.S_ISLNK(st.st_mode):
                size = len(os.readlink(os.fsencode(item.path or ""))) if item.path else 0
                data += size + (-size) % 4
        for size in sizes.values():
            data += size + (-size) % 4
        self._links = {key: names for key, names in links.items() if len(names) > 1}
        self.archive_bytes += data + len(header_bytes(TRAILER_ENTRY))

    def _mtime(self, st: os.stat_result) -> int:
        mtime = max(0, int(st.st_mtime))
        if self.source_date_epoch is not None:
            mtime = min(mtime, self.source_date_epoch)
        return mtime

    def __iter__(self) -> Iterator[Entry]:
        next_ino = 1
        inodes: dict[tuple[int, int], int] = {}
        open_groups: set[tuple[int, int]] = set()
        synthetic_mtime = self.source_date_epoch or 0
        for item in _walk(self.tree, self._overlay):
            ino = next_ino
            st = item.st
            if item.node is not None:
                node = item.node
                kind = stat.S_IFCHR if node.kind == "c" else stat.S_IFBLK
                entry = Entry(
                    name=item.name,
                    mode=kind | node.perm,
                    ino=ino,
                    mtime=synthetic_mtime,
                    rdevmajor=node.major,
                    rdevminor=node.minor,
                )
            elif st is None:
                entry = Entry(
                    name=item.name,
                    mode=SYNTHETIC_DIR_MODE,
                    ino=ino,
                    nlink=2 + item.subdirs,
                    mtime=synthetic_mtime,
                )
            else:
                entry, ino = self._real_entry(item, st, ino, inodes, open_groups)
            if ino == next_ino:
                next_ino += 1
            yield entry
        if open_groups:
            names = ", ".join(sorted(self._links[key][-1] for key in open_groups))
            raise MkmediaError(
                f"Hard-linked files changed in the rescue tree {self.tree} while the initrd was "
                f"being packed (the last link was not found: {names}).",
                hint="Make sure nothing writes into the rescue tree during the build, then "
                "build again.",
            )

    def _real_entry(
        self,
        item: _Item,
        st: os.stat_result,
        ino: int,
        inodes: dict[tuple[int, int], int],
        open_groups: set[tuple[int, int]],
    ) -> tuple[Entry, int]:
        mode = st.st_mode
        nlink = 1
        size = 0
        target: bytes | None = None
        rdev = (0, 0)
        if stat.S_ISREG(mode):
            size = st.st_size
            key = (st.st_dev, st.st_ino)
            group = self._links.get(key)
            if group is not None:
                # newc stores a hard-linked file once: every link carries the same ino and
                # nlink, the data goes with the last one. GNU cpio defers size-0 links until
                # the data arrives; the kernel (init/initramfs.c) creates the first name, links
                # the later ones to it (matching nlink >= 2, ino and mode) and writes the data
                # of whichever entry carries it, without truncating.
                ino = inodes.setdefault(key, ino)
                nlink = len(group)
                if item.name == group[-1]:
                    open_groups.discard(key)
                else:
                    open_groups.add(key)
                    size = 0
        elif stat.S_ISDIR(mode):
            nlink = 2 + item.subdirs
        elif stat.S_ISLNK(mode):
            assert item.path is not None
            target = os.readlink(os.fsencode(item.path))
            size = len(target)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            rdev = (os.major(st.st_rdev), os.minor(st.st_rdev))
        entry = Entry(
            name=item.name,
            mode=mode,
            ino=ino,
            uid=0 if self.normalize_owners else st.st_uid,
            gid=0 if self.normalize_owners else st.st_gid,
            nlink=nlink,
            mtime=self._mtime(st),
            size=size,
            rdevmajor=rdev[0],
            rdevminor=rdev[1],
            source=item.path if stat.S_ISREG(mode) else None,
            link_target=target,
        )
        return entry, ino


def iter_tree(
    tree: Path,
    *,
    source_date_epoch: int | None = None,
    normalize_owners: bool = True,
    extra_nodes: Sequence[DeviceNode] | None = None,
) -> Iterator[Entry]:
    """Yield the entries of `tree` in archive order (the trailer excluded)."""
    yield from TreeScan(
        tree,
        source_date_epoch=source_date_epoch,
        normalize_owners=normalize_owners,
        extra_nodes=extra_nodes,
    )
