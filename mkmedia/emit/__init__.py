"""Emitters: one module per output kind; each returns the artifacts it wrote (for the manifest)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Artifact:
    """One file an emitter wrote: the manifest lists these with their size and sha256."""

    path: Path
    kind: str  # iso, usb-image, pxe-kernel, ...
    size: int
    sha256: str

    @classmethod
    def of(cls, path: Path, kind: str) -> Artifact:
        digest = hashlib.sha256()
        with open(path, "rb") as stream:
            while chunk := stream.read(1 << 20):
                digest.update(chunk)
        return cls(path=path, kind=kind, size=path.stat().st_size, sha256=digest.hexdigest())


# OUTPUT kind (as spelled in the recipe, upper case) -> the emitter's entry point. Each emitter
# module registers itself; steps look the kind up here and pass plain parameters.
EMITTERS: dict[str, Callable[..., list[Artifact]]] = {}


def register(kind: str) -> Callable[[Callable[..., list[Artifact]]], Callable[..., list[Artifact]]]:
    def decorate(func: Callable[..., list[Artifact]]) -> Callable[..., list[Artifact]]:
        EMITTERS[kind.upper()] = func
        return func

    return decorate
