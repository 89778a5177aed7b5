"""An archive's volumes: one file, or the stream cut into numbered pieces of a fixed size
(BACKUP_VOLUME_SIZE) by `split`, each with its size and sha256 in the manifest.

Names: `<archive>.tar.zst` (`.enc` after it when encrypted), and `.001`, `.002` ... after
that when cut. Partials are `.<name>.partial` beside them until the backup is complete.
Restore reads the volumes in order through `cat` (the kernel pipes the data; no Python in
the data path).
"""

from __future__ import annotations

from pathlib import Path

from rescue_runtime.backup import manifest as manifests

SUFFIX_DIGITS = 3
PARTIAL = ".partial"


def stream_name(archive: str, *, encrypted: bool) -> str:
    return f"{archive}.tar.zst" + (".enc" if encrypted else "")


def partial_prefix(directory: Path, stream: str) -> Path:
    """What split's numbered pieces start with: .<stream>. (then 001.partial, ...)."""
    return directory / f".{stream}."


def split_argv(directory: Path, stream: str, volume_size: int) -> list[str]:
    """`split` writing the stream from stdin into .<stream>.001.partial, .002.partial, ..."""
    return [
        "split",
        f"--bytes={volume_size}",
        f"--suffix-length={SUFFIX_DIGITS}",
        "--numeric-suffixes=1",
        f"--additional-suffix={PARTIAL}",
        "-",
        str(partial_prefix(directory, stream)),
    ]


def single_partial(directory: Path, stream: str) -> Path:
    return directory / f".{stream}{PARTIAL}"


def written_partials(directory: Path, stream: str, volume_size: int) -> list[tuple[Path, str]]:
    """(partial path, final name) of what the writer left, in order."""
    if not volume_size:
        return [(single_partial(directory, stream), stream)]
    prefix = partial_prefix(directory, stream).name
    found = sorted(directory.glob(f"{prefix}{'[0-9]' * SUFFIX_DIGITS}{PARTIAL}"))
    return [(path, stream + path.name[len(prefix) - 1 : -len(PARTIAL)]) for path in found]


def remove_partials(directory: Path, stream: str) -> None:
    for path in directory.glob(f".{stream}*{PARTIAL}"):
        path.unlink(missing_ok=True)


def describe(path: Path, name: str) -> dict[str, object]:
    return {"name": name, "size": path.stat().st_size, "sha256": manifests.sha256_file(path)}


def reader(paths: list[Path]) -> tuple[list[list[str]], Path | None]:
    """The first commands of a restore pipeline and its stdin: one volume is read as stdin,
    several through `cat` in their order."""
    if len(paths) == 1:
        return [], paths[0]
    return [["cat", "--", *map(str, paths)]], None
