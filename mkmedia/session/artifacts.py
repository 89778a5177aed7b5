"""What a run wrote: artifacts and the JSON manifest that lists them with sizes and sha256."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Artifact:
    path: Path
    kind: str  # iso, initrd, kernel, manifest, report, pxe-tree, ...
    size: int
    sha256: str

    @classmethod
    def of(cls, path: Path, kind: str) -> Artifact:
        return cls(path, kind, path.stat().st_size, sha256_file(path))

    def as_dict(self) -> dict[str, object]:
        return {"path": str(self.path), "kind": self.kind, "size": self.size, "sha256": self.sha256}


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary name beside `path`, then rename: never a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def copy_artifact(source: Path, destination: Path, kind: str) -> Artifact:
    """Copy to a temporary name beside the destination, then rename: never half a file."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(f".{destination.name}.partial")
    try:
        shutil.copyfile(source, partial)
        os.replace(partial, destination)
    finally:
        partial.unlink(missing_ok=True)
    return Artifact.of(destination, kind)


def write_manifest(path: Path, artifacts: Sequence[Artifact], meta: dict[str, object]) -> Artifact:
    document = {"format_version": 1, **meta, "artifacts": [a.as_dict() for a in artifacts]}
    atomic_write_bytes(path, (json.dumps(document, indent=2, sort_keys=True) + "\n").encode())
    return Artifact.of(path, "manifest")
