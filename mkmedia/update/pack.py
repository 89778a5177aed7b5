"""Write an overlay: a reproducible tar.gz of paths under the rescue system's root, with its
manifest (path, sha256, purpose of every file) and, with a key, the manifest's SSH signature."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from rescue_runtime import atomic
from rescue_runtime.errors import MissingError
from rescue_runtime.run import run, which
from rescue_runtime.update.overlay import (
    FORMAT_VERSION,
    MANIFEST,
    NAMESPACE,
    RUNTIME_DIR,
    SIGNATURE,
    manifest_entry,
)

LAYOUT_PATH = "var/lib/mkmedia/layout"


@dataclass(frozen=True)
class Packed:
    path: Path
    files: int
    signed: bool
    host: str


def tree_files(source: Path, prefix: str, *, skip_dirs: tuple[str, ...] = ()) -> dict[str, bytes]:
    """Every regular file below `source`, by its path under `prefix` in the overlay."""
    files: dict[str, bytes] = {}
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if any(part in skip_dirs for part in relative.parts) or path.is_symlink():
            continue
        if path.is_file():
            files[str(PurePosixPath(prefix, *relative.parts))] = path.read_bytes()
    return files


def runtime_files(package_dir: Path) -> dict[str, bytes]:
    """The rescue runtime's sources, where rescue_runtime/__init__.py looks for an overlay."""
    return {
        name: data
        for name, data in tree_files(
            package_dir, f"{RUNTIME_DIR}/rescue_runtime", skip_dirs=("__pycache__",)
        ).items()
        if name.endswith((".py", ".md"))
    }


def sign(manifest: bytes, key: Path) -> bytes:
    """`ssh-keygen -Y sign` of the manifest with the private key `key`."""
    if which("ssh-keygen") is None:
        raise MissingError(
            "ssh-keygen is needed to sign the overlay (--sign-key) and is not installed.",
            hint="Install the Debian package openssh-client.",
        )
    if not key.is_file():
        raise MissingError(
            f"The signing key {key} does not exist.",
            hint="Give the private key whose public half is in UPDATE_ALLOWED_SIGNERS.",
        )
    with tempfile.TemporaryDirectory(prefix="mkmedia-pack-") as work:
        target = Path(work) / MANIFEST
        target.write_bytes(manifest)
        run(
            ["ssh-keygen", "-q", "-Y", "sign", "-f", key, "-n", NAMESPACE, target],
            what=f"signing the overlay's manifest with {key}",
        )
        return (Path(work) / f"{MANIFEST}.sig").read_bytes()


def manifest_bytes(files: Mapping[str, bytes], *, host: str, created: str, version: str) -> bytes:
    document = {
        "format_version": FORMAT_VERSION,
        "host": host,
        "created": created,
        "mkmedia_version": version,
        "files": [manifest_entry(path, data) for path, data in sorted(files.items())],
    }
    return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode()


def write_overlay(
    output: Path,
    files: Mapping[str, bytes],
    *,
    host: str,
    created: str,
    version: str,
    mtime: int,
    sign_key: Path | None = None,
) -> Packed:
    """The archive at `output`, written atomically: manifest (and signature) first."""
    manifest = manifest_bytes(files, host=host, created=created, version=version)
    members: dict[str, bytes] = {MANIFEST: manifest}
    if sign_key is not None:
        members[SIGNATURE] = sign(manifest, sign_key)
    dirs = sorted({str(p) for name in files for p in PurePosixPath(name).parents if str(p) != "."})
    with (
        atomic.atomic_open(output, mode=0o600) as handle,
        gzip.GzipFile(fileobj=handle, mode="wb", mtime=mtime, filename="") as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for name in dirs:
            tar.addfile(_info(name, tarfile.DIRTYPE, 0o755, 0, mtime))
        for name, data in [*members.items(), *sorted(files.items())]:
            tar.addfile(_info(name, tarfile.REGTYPE, 0o644, len(data), mtime), io.BytesIO(data))
    return Packed(output, len(files), sign_key is not None, host)


def _info(name: str, kind: bytes, mode: int, size: int, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size, info.mtime = kind, mode, size, mtime
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info
