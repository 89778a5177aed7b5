"""The overlay format both sides share, and the checks an overlay must pass before it is used.

An overlay is a tar archive (plain or compressed) of paths relative to the rescue system's
root, under the allowed prefixes only, with a manifest at its top (MANIFEST: every file's
path, sha256 and purpose) and, when signed, the manifest's SSH signature beside it
(SIGNATURE, `ssh-keygen -Y sign -n mkmedia-update`). The signature covers the manifest and the
manifest covers every file, so a file changed after signing fails its sha256 and a changed
manifest fails the signature.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import tarfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from rescue_runtime.errors import MkmediaError

MANIFEST = "MKMEDIA-UPDATE.json"
SIGNATURE = MANIFEST + ".sig"
NAMESPACE = "mkmedia-update"  # the ssh-keygen -Y namespace: a signature for nothing else fits
FORMAT_VERSION = 1

# Where an overlay may write, relative to the root. The runtime overlay directory is the
# first entry of the rescue_runtime package's path (rescue_runtime/__init__.py).
CONFIG_DIR = "etc/mkmedia"
DATA_DIR = "var/lib/mkmedia"
RUNTIME_DIR = "var/lib/mkmedia/runtime"
ALLOWED_PREFIXES = (CONFIG_DIR, DATA_DIR)
# Inside those, what no overlay may touch: the keys that judge overlays, and update's own
# records (an overlay rewriting either could disarm the checks or fake a rollback).
TRUST_DIR = "etc/mkmedia/update"
STATE_DIR = "var/lib/mkmedia/update"
PROTECTED = (TRUST_DIR, STATE_DIR)
ALLOWED_SIGNERS = TRUST_DIR + "/allowed_signers"

DEFAULT_MAX_BYTES = 64 * 1024 * 1024

PURPOSES = {
    CONFIG_DIR: "configuration",
    "var/lib/mkmedia/layout": "disk layout",
    RUNTIME_DIR: "runtime code",
    DATA_DIR: "recovery data",
}


class OverlayError(MkmediaError):
    """An overlay that must not be applied: nothing was changed."""


def purpose_of(path: str) -> str:
    """What a path in an overlay is for, by its longest matching prefix."""
    for prefix in sorted(PURPOSES, key=len, reverse=True):
        if under(path, prefix):
            return PURPOSES[prefix]
    return "other"


def under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


def refused(source: str, what: str, hint: str = "") -> OverlayError:
    return OverlayError(
        f"The overlay {source} is refused: {what}. Nothing was changed.",
        hint=hint or "Build the overlay again with `mkmedia update pack` on the host.",
    )


@dataclass(frozen=True)
class Entry:
    """One member that passed the checks: a file (with its bytes), a directory or a link."""

    path: str  # relative to the root, normalised
    kind: str  # file | dir | symlink
    mode: int
    data: bytes = b""
    target: str = ""  # of a symlink

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass
class Overlay:
    source: str
    manifest: dict[str, object]
    manifest_bytes: bytes
    signature: bytes | None
    entries: list[Entry] = field(default_factory=list)

    @property
    def files(self) -> list[Entry]:
        return [e for e in self.entries if e.kind != "dir"]


def normalise(name: str, source: str) -> str:
    """The member's path relative to the root; refuses absolute paths and '..'."""
    if name.startswith("/"):
        raise refused(source, f"the member {name!r} has an absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise refused(source, f"the member {name!r} has a '..' component (path traversal)")
    if "\0" in name:
        raise refused(source, f"the member {name!r} has a NUL byte in its name")
    return "/".join(parts)


def allowed(path: str) -> bool:
    return any(under(path, p) for p in ALLOWED_PREFIXES) and not any(
        under(path, p) for p in PROTECTED
    )


def _parent_of_prefix(path: str) -> bool:
    """`etc`, `var`, `var/lib`: directories an archive lists on the way to a prefix."""
    return any(p.startswith(path + "/") for p in ALLOWED_PREFIXES)


def check_link(path: str, target: str, source: str) -> None:
    """A symbolic link must point inside the allowed prefixes, resolved where it sits."""
    if target.startswith("/"):
        resolved = posixpath.normpath(target).lstrip("/")
    else:
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
    if resolved.startswith("..") or not allowed(resolved):
        raise refused(
            source,
            f"the symbolic link {path} -> {target} points outside the overlay's allowed "
            f"places ({', '.join('/' + p for p in ALLOWED_PREFIXES)})",
        )


def read_overlay(archive: Path, source: str, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Overlay:
    """Read and check every member; OverlayError on the first that is not acceptable."""
    size = archive.stat().st_size
    if size > max_bytes:
        raise refused(
            source,
            f"the archive has {size} bytes, over the limit of {max_bytes}",
            "Leave large files out of the overlay, or raise UPDATE_MAX_MIB in the media.",
        )
    try:
        with tarfile.open(archive, "r:*") as tar:
            return _read_members(tar, source, max_bytes)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise refused(
            source,
            f"it is not a complete tar archive ({type(exc).__name__}: {exc}); a download that "
            "was cut short looks like this",
            "Fetch it again; check the file on the server is complete.",
        ) from exc


def _read_members(tar: tarfile.TarFile, source: str, max_bytes: int) -> Overlay:
    manifest_bytes: bytes | None = None
    signature: bytes | None = None
    entries: list[Entry] = []
    total = 0
    seen: set[str] = set()
    for member in tar:  # reading member by member meets a truncation at its place
        path = normalise(member.name, source)
        if not path:
            continue
        if member.ischr() or member.isblk() or member.isfifo():
            raise refused(source, f"the member {path} is a device file or FIFO")
        if member.islnk():
            raise refused(source, f"the member {path} is a hard link (overlays carry none)")
        if not (member.isfile() or member.isdir() or member.issym()):
            raise refused(source, f"the member {path} has an unknown type {member.type!r}")
        total += member.size
        if total > max_bytes:
            raise refused(
                source,
                f"its contents unpack to more than the limit of {max_bytes} bytes",
                "Leave large files out of the overlay, or raise UPDATE_MAX_MIB in the media.",
            )
        if path in (MANIFEST, SIGNATURE) and member.isfile():
            data = _data(tar, member, source)
            if path == MANIFEST:
                manifest_bytes = data
            else:
                signature = data
            continue
        if member.isdir() and _parent_of_prefix(path):
            continue
        if not allowed(path):
            raise refused(
                source,
                f"the member {path} is outside the places an overlay may change "
                f"({', '.join('/' + p for p in ALLOWED_PREFIXES)}, except "
                f"{', '.join('/' + p for p in PROTECTED)})",
            )
        if path in seen:
            raise refused(source, f"the member {path} appears twice")
        seen.add(path)
        mode = member.mode & 0o7777 & ~0o6000  # no set-id bits from an overlay
        if member.issym():
            check_link(path, member.linkname, source)
            entries.append(Entry(path, "symlink", 0o777, target=member.linkname))
        elif member.isdir():
            entries.append(Entry(path, "dir", mode))
        else:
            entries.append(Entry(path, "file", mode, data=_data(tar, member, source)))
    if manifest_bytes is None:
        raise refused(source, f"it has no {MANIFEST} at its top: it is not a mkmedia overlay")
    links = {e.path for e in entries if e.kind == "symlink"}
    for entry in entries:
        through = [p for p in links if entry.path.startswith(p + "/")]
        if through:
            raise refused(
                source, f"the member {entry.path} would be written through its link {through[0]}"
            )
    overlay = Overlay(source, _parse_manifest(manifest_bytes, source), manifest_bytes, signature)
    overlay.entries = entries
    check_manifest(overlay)
    return overlay


def _data(tar: tarfile.TarFile, member: tarfile.TarInfo, source: str) -> bytes:
    handle = tar.extractfile(member)
    if handle is None:
        raise refused(source, f"the member {member.name} cannot be read")
    data = handle.read()
    if len(data) != member.size:
        raise refused(source, f"the member {member.name} is cut short (truncated archive)")
    return data


def _parse_manifest(data: bytes, source: str) -> dict[str, object]:
    try:
        manifest = json.loads(data)
    except ValueError as exc:
        raise refused(source, f"its {MANIFEST} is not JSON ({exc})") from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), list):
        raise refused(source, f"its {MANIFEST} has no list of files")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise refused(
            source,
            f"its {MANIFEST} has format version {manifest.get('format_version')!r}, this "
            f"rescue system reads version {FORMAT_VERSION}",
        )
    return manifest


def check_manifest(overlay: Overlay) -> None:
    """Every file and link is in the manifest with its sha256 (or target), and nothing more."""
    listed: dict[str, dict[str, object]] = {}
    files = overlay.manifest["files"]
    assert isinstance(files, list)
    for item in files:
        if not isinstance(item, dict) or not isinstance(item.get("path"), str):
            raise refused(overlay.source, f"its {MANIFEST} has an entry without a path")
        listed[item["path"]] = item
    for entry in overlay.files:
        item = listed.pop(entry.path, None)
        if item is None:
            raise refused(
                overlay.source, f"the member {entry.path} is not in its manifest (added later?)"
            )
        expected = item.get("target") if entry.kind == "symlink" else item.get("sha256")
        actual = entry.target if entry.kind == "symlink" else entry.sha256
        if expected != actual:
            raise refused(
                overlay.source,
                f"the member {entry.path} does not match its manifest (sha256 or link target "
                "differs): it was changed after the manifest was written",
            )
    if listed:
        raise refused(
            overlay.source, f"its manifest lists {', '.join(sorted(listed))}, which it lacks"
        )


def manifest_entry(
    path: str, data: bytes | None = None, target: str | None = None
) -> dict[str, object]:
    """The manifest's line for one file (or link), as `mkmedia update pack` writes it."""
    item: dict[str, object] = {"path": path, "purpose": purpose_of(path)}
    if target is not None:
        item["target"] = target
    else:
        item["sha256"] = hashlib.sha256(data or b"").hexdigest()
    return item
