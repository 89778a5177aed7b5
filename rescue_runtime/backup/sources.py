"""What a file-level backup covers, from the saved layout: each mounted file system once,
btrfs subvolumes that are not mounted on their own, and everything left out, with the reason.

Paths in a plan are the backed-up system's (the layout's root is "/"); tar runs with
`-C root` on member names "./..." so the archive restores into any directory.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field

from rescue_runtime.layout.model import Layout, Mount

# Left out by default, as ReaR does (their content; the directories themselves stay).
DEFAULT_EXCLUDES = ("/tmp/*", "/dev/shm/*")
# File systems that carry no data of the machine (the layout holds none of them, but
# they appear under a backed-up mount point on a live system).
PSEUDO_TYPES = frozenset(
    [
        "proc",
        "sysfs",
        "devtmpfs",
        "devpts",
        "tmpfs",
        "ramfs",
        "cgroup",
        "cgroup2",
        "securityfs",
        "debugfs",
        "tracefs",
        "pstore",
        "bpf",
        "efivarfs",
        "mqueue",
        "hugetlbfs",
        "configfs",
        "fusectl",
        "binfmt_misc",
        "autofs",
        "overlay",
        "squashfs",
        "nsfs",
        "rpc_pipefs",
        "nfsd",
    ]
)


@dataclass
class Source:
    """One tar argument: a mount point or a subvolume, with what it is."""

    path: str  # in the backed-up system: "/", "/home", "/srv/data/nested"
    kind: str  # mount | subvolume
    device: str
    fstype: str
    fsroot: str = "/"  # mounts: the subtree mounted; subvolumes: the subvolume's path
    subvolume_id: int | None = None
    used_bytes: int = 0  # space the file system uses (mounts only; 0: unknown)

    @property
    def member(self) -> str:
        """The tar member name: "." for the root, "./home" for /home."""
        return "." if self.path == "/" else "." + self.path


@dataclass
class Exclusion:
    pattern: str  # a path or glob in the backed-up system, or what was not backed up
    reason: str
    # True: a pattern tar leaves out. False: a record only (a mount point whose file system
    # is not backed up keeps its directory; --one-file-system already skips its content).
    tar: bool = True


@dataclass
class BackupPlan:
    root: str  # where the backed-up system is mounted here ("/" on the host)
    sources: list[Source] = field(default_factory=list)
    exclusions: list[Exclusion] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def host_path(self, path: str) -> str:
        return os.path.normpath(os.path.join(self.root, path.lstrip("/")))


def _used_bytes(path: str) -> int:
    try:
        st = os.statvfs(path)
    except OSError:
        return 0
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def _live_mounts() -> list[tuple[str, str]]:
    """(mount point, fstype) of every mount this process sees."""
    try:
        with open("/proc/self/mounts") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    result = []
    for line in lines:
        fields = line.split()
        if len(fields) >= 3:
            # /proc/self/mounts escapes blanks as octal (\040)
            target = fields[1].encode().decode("unicode_escape")
            result.append((target, fields[2]))
    return result


def system_path(path: str, root: str) -> str | None:
    """`path` (a host path) as a path of the system mounted at `root`, or None."""
    if root == "/":
        return path
    if path == root:
        return "/"
    if path.startswith(root.rstrip("/") + "/"):
        return path[len(root.rstrip("/")) :]
    return None


def _mounted_file_systems(layout: Layout, exclusions: list[Exclusion]) -> list[Mount]:
    chosen: list[Mount] = []
    seen: set[tuple[str, str]] = set()
    for m in sorted(layout.mounts, key=lambda m: m.mountpoint):
        if m.fstype == "swap":
            continue
        if not m.mounted:
            exclusions.append(
                Exclusion(m.mountpoint, "in fstab but not mounted: not backed up", tar=False)
            )
            continue
        key = (m.device, m.fsroot)
        if key in seen:
            exclusions.append(
                Exclusion(m.mountpoint, "a second mount of a backed-up file system", tar=False)
            )
            continue
        seen.add(key)
        chosen.append(m)
    return chosen


def _unmounted_subvolumes(
    layout: Layout, mounts: Sequence[Mount], root: str, exclusions: list[Exclusion]
) -> list[Source]:
    """btrfs subvolumes not mounted on their own, at the place a mount shows them."""
    found: list[Source] = []
    for fs in layout.filesystems:
        if fs.btrfs is None:
            continue
        devices = set(fs.btrfs.devices) | {fs.device}
        fs_mounts = [m for m in mounts if m.device in devices]
        mounted_roots = {m.fsroot.strip("/") for m in fs_mounts}
        for sub in fs.btrfs.subvolumes:
            if sub.path in mounted_roots:
                continue
            best: tuple[int, str] | None = None
            for m in fs_mounts:
                prefix = m.fsroot.strip("/")
                if prefix and not sub.path.startswith(prefix + "/"):
                    continue
                rest = sub.path[len(prefix) :].lstrip("/")
                if best is None or len(prefix) > best[0]:
                    best = (len(prefix), os.path.join(m.mountpoint, rest))
            where = f"btrfs subvolume {sub.path} on {fs.device}"
            if best is None:
                exclusions.append(
                    Exclusion(where, "under no mount point: not backed up", tar=False)
                )
                continue
            location = best[1]
            if not os.path.isdir(os.path.join(root, location.lstrip("/"))):
                exclusions.append(
                    Exclusion(where, f"{location} is not there: not backed up", tar=False)
                )
                continue
            found.append(
                Source(
                    location,
                    "subvolume",
                    fs.device,
                    "btrfs",
                    fsroot=sub.path,
                    subvolume_id=sub.id,
                )
            )
    return found


def plan_backup(
    layout: Layout,
    *,
    root: str | None = None,
    excludes: Iterable[tuple[str, str]] = (),
) -> BackupPlan:
    """The backup of what `layout` mounts; `excludes` are (pattern, reason) pairs on top of
    the defaults (BACKUP_PROG_EXCLUDE, the output directory, the build area, the target)."""
    root = root or layout.options.root or "/"
    plan = BackupPlan(root=root)
    plan.exclusions = [Exclusion(p, "left out by default (as ReaR)") for p in DEFAULT_EXCLUDES]
    plan.exclusions += [Exclusion(p, reason) for p, reason in excludes]
    mounts = _mounted_file_systems(layout, plan.exclusions)
    for m in mounts:
        plan.sources.append(
            Source(
                m.mountpoint,
                "mount",
                m.device,
                m.fstype,
                fsroot=m.fsroot,
                used_bytes=_used_bytes(plan.host_path(m.mountpoint)),
            )
        )
    plan.sources += _unmounted_subvolumes(layout, mounts, root, plan.exclusions)
    plan.sources.sort(key=lambda s: s.path)
    for excluded in layout.excluded:
        reason = f"excluded from the layout: {excluded.reason}"
        plan.exclusions.append(Exclusion(excluded.id, reason, tar=False))
    backed = {s.path for s in plan.sources if s.kind == "mount"}
    for target, fstype in _live_mounts():
        path = system_path(target, root)
        if path is None or path in backed or path == "/":
            continue
        if not any(path.startswith(b.rstrip("/") + "/") for b in backed):
            continue
        kind = "pseudo or temporary file system" if fstype in PSEUDO_TYPES else "not in the layout"
        entry = Exclusion(path, f"{fstype}: {kind}, not backed up", tar=False)
        if entry not in plan.exclusions:
            plan.exclusions.append(entry)
    return plan
