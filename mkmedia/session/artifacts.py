"""What a run wrote: artifacts and the JSON manifest that lists them with sizes and sha256."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rescue_runtime import atomic


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
    """Never a half-written file (owner-only, as the manifest always was)."""
    atomic.write_bytes(path, data, mode=0o600)


def copy_artifact(source: Path, destination: Path, kind: str) -> Artifact:
    """Copy through a temporary name beside the destination: never half a file."""
    atomic.copy_file(source, destination)
    return Artifact.of(destination, kind)


def write_manifest(path: Path, artifacts: Sequence[Artifact], meta: dict[str, object]) -> Artifact:
    document = {"format_version": 1, **meta, "artifacts": [a.as_dict() for a in artifacts]}
    atomic_write_bytes(path, (json.dumps(document, indent=2, sort_keys=True) + "\n").encode())
    return Artifact.of(path, "manifest")
