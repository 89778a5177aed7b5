"""The restore side of NETFS: check everything first, then apply the chain in order.

`check` reads the manifest, checks its HMAC with the key (an encrypted backup: a wrong key
stops here), every volume's size and sha256, and that the chain is unbroken. Only then does
`restore` write: the full archive first, each later one with --listed-incremental=/dev/null
(tar then removes what was deleted between the archives).
"""

from __future__ import annotations

import contextlib
import functools
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from rescue_runtime import atomic
from rescue_runtime.backup import chain, crypt, spanning, tapemedium
from rescue_runtime.backup import manifest as manifests
from rescue_runtime.backup.archive import TAR_METADATA, TAR_READ, decoders, read
from rescue_runtime.backup.manifest import BackupError
from rescue_runtime.backup.progress import ProgressFunc, ProgressLine, read_bytes
from rescue_runtime.run import run


def check(
    directory: Path, *, key_file: Path | None = None, check_sha256: bool = True
) -> dict[str, object]:
    """Manifest (sealed with the key when encrypted), every volume, the chain; writes nothing."""
    document = manifests.read_manifest(directory)
    crypt.check_sealed(document, key_file, directory)
    later = spanning.elsewhere(spanning.read_media_file(directory))
    manifests.verify(directory, check_sha256=check_sha256, elsewhere=later)
    listed = {str(v["name"]) for v in manifests.volumes(document)}
    chain.check_chain(chain.archives(document), listed, directory)
    return document


def _fstype(path: Path) -> str:
    return run(["stat", "-f", "-c", "%T", path], check=False).stdout.strip()


def _count_members(path: Path) -> int:
    """tar's verbose listing of an extraction: one line a member, and with
    --listed-incremental a "tar: Deleting ..." line for each file it removed (not counted)."""
    with open(path, "rb") as f:
        return sum(1 for line in f if not line.startswith(b"tar: "))


def _make_subvolumes(document: dict[str, object], target_dir: Path) -> None:
    subvolumes = document.get("subvolumes") or []
    if not subvolumes or _fstype(target_dir) != "btrfs":
        return
    assert isinstance(subvolumes, list)
    for sub in subvolumes:
        path = target_dir / str(sub["path"]).lstrip("/")
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            run(["btrfs", "subvolume", "create", path], what="recreating a subvolume")


def restore(
    directory: Path,
    target_dir: Path,
    *,
    key_file: Path | None = None,
    progress: ProgressFunc | None = None,
    make_subvolumes: bool = True,
    finder: spanning.MediumFinder | None = None,
    skip_mounts: Sequence[str] = (),
    check_sha256: bool = True,
) -> dict[str, object]:
    """Check, then extract every archive of the chain into `target_dir` in order and check
    each one's file count. On btrfs the recorded subvolumes are created first; the content
    of `skip_mounts` (mount points left out of the recovery) is not restored.
    `check_sha256=False` is for a caller that has just checked every volume's sha256
    (recover's verify stage): reading the volumes again would cost as long as that did; the
    sizes are still checked, and zstd checks the content checksum in its stream."""
    document = check(directory, key_file=key_file, check_sha256=check_sha256)
    later = spanning.elsewhere(spanning.read_media_file(directory))
    if not target_dir.is_dir():
        raise BackupError(
            f"The restore target {target_dir} is not a directory.",
            hint="Create and mount it first.",
        )
    if make_subvolumes:
        _make_subvolumes(document, target_dir)
    encryption = crypt.encryption(document)
    restored = 0
    for archive in chain.archives(document):
        paths = [directory / name for name in archive.volumes]
        # A later archive of a chain carries the directories' listings: /dev/null as the
        # snapshot makes tar delete what the archive says is gone.
        listed = ["--listed-incremental=/dev/null"] if archive.type != "full" else []
        show = progress or ProgressLine(f"restore {archive.name}")
        with tempfile.TemporaryDirectory(prefix="mkmedia-restore.") as work:
            index = Path(work) / "index"
            tar = [
                "tar", "--extract", "--file=-", f"--directory={target_dir}", *TAR_METADATA,
                *TAR_READ, *listed, "--preserve-permissions", "--same-owner", "--verbose",
                f"--index-file={index}", "--anchored",
                *[f"--exclude=.{m.rstrip('/')}/*" for m in skip_mounts],
            ]  # fmt: skip
            what = f"restoring {archive.name} of {directory} into {target_dir}"
            try:
                if any(name in later for name in archive.volumes):
                    if finder is None:
                        raise BackupError(
                            f"The backup in {directory} spans several media, and nothing "
                            "here can reach the others; nothing was restored.",
                            hint="Restore it with `mkmedia recover` in the rescue system.",
                        )
                    walk_volumes(
                        document,
                        archive,
                        directory,
                        later,
                        finder,
                        tar,
                        what,
                        encryption=encryption,
                        key_file=key_file,
                        progress=show,
                    )
                else:
                    with _volume_paths(directory, paths, Path(work)) as sources:
                        read(
                            sources,
                            tar,
                            encryption=encryption,
                            key_file=key_file,
                            progress=show,
                            what=what,
                        )
            finally:
                if isinstance(show, ProgressLine):
                    show.close()
            count = _count_members(index)
        # mount points left out of the recovery keep their directory only: fewer files
        if count != archive.files and not (skip_mounts and count < archive.files):
            raise BackupError(
                f"Restoring {archive.name} of {directory} into {target_dir} gave {count} "
                f"files, the manifest says {archive.files}.",
                hint="The backup is incomplete: check the log, and restore from another copy.",
            )
        restored += count
    return {"files": restored, "target": str(target_dir), "manifest": document}


def walk_volumes(
    document: dict[str, object],
    archive: chain.Archive,
    directory: Path,
    later: dict[str, spanning.Medium],
    finder: spanning.MediumFinder,
    tar: list[str],
    what: str,
    *,
    encryption: dict[str, object] | None,
    key_file: Path | None,
    progress: ProgressFunc,
) -> None:
    """An archive whose volumes are on several media: each medium is reached in turn (and
    kept while its volumes are read), each volume checked before it is fed."""
    records = {str(v["name"]): v for v in manifests.volumes(document)}
    total = max((m.number for m in later.values()), default=1)
    current: list[tuple[int, contextlib.ExitStack, Path]] = []

    @contextlib.contextmanager
    def reach(name: str) -> Iterator[Path]:
        medium = later.get(name)
        if medium is None:
            yield directory / name  # on the first medium, checked by verify
            return
        if not current or current[0][0] != medium.number:
            while current:
                current.pop()[1].close()
            stack = contextlib.ExitStack()
            place = stack.enter_context(finder.medium(medium, total))
            current.append((medium.number, stack, place))
        path = current[0][2] / name
        spanning.check_volume(path, records[name])
        yield path

    commands = [*decoders(encryption, key_file), tar]
    size = sum(int(str(records[n]["size"])) for n in archive.volumes)
    try:
        spanning.walk(
            [(name, functools.partial(reach, name)) for name in archive.volumes],
            commands,
            on_tick=lambda pids: progress(read_bytes(pids[0]), size),
            what=what,
        )
    finally:
        while current:
            current.pop()[1].close()


@contextlib.contextmanager
def _volume_paths(directory: Path, paths: list[Path], work: Path) -> Iterator[list[Path]]:
    """What the restore reads: the volume files, or for a backup on a tape (tape:// in the
    rescue system) a FIFO the tape's records stream into (backup/tapemedium.py)."""
    if not tapemedium.is_on_tape(directory):
        yield paths
        return
    with tapemedium.volume_stream(directory, work) as fifo:
        yield [fifo]


class _NotInBackup(Exception):
    """extract_member: tar found no such member (nothing is left behind)."""


def extract_member(
    directory: Path, path: str, destination: Path, *, key_file: Path | None = None
) -> bool:
    """Copy the file at `path` (as the backed-up system had it, "/etc/keys/x") out of the
    backup in `directory` into `destination` (mode 0600); False when the backup lacks it.
    The newest archive of the chain that holds it wins; tar stops at the first copy."""
    document = manifests.read_manifest(directory)
    crypt.check_sealed(document, key_file, directory)
    if spanning.read_media_file(directory):
        raise BackupError(
            f"{path} cannot be read out of the backup in {directory} before the restore: the "
            "backup spans several media.",
            hint=f"Copy {path} from elsewhere to where recover asks for it, and run recover again.",
        )
    member = "." + path if path.startswith("/") else path
    for archive in reversed(chain.archives(document)):
        paths = [directory / name for name in archive.volumes]
        try:
            with (
                atomic.atomic_path(destination, mode=0o600) as partial,
                tempfile.TemporaryDirectory(prefix="mkmedia-extract.") as work,
                _volume_paths(directory, paths, Path(work)) as sources,
            ):
                os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
                read(
                    sources,
                    [
                        "tar",
                        "--extract",
                        "--file=-",
                        *TAR_READ,
                        "--to-stdout",
                        "--occurrence=1",
                        member,
                    ],
                    encryption=crypt.encryption(document),
                    key_file=key_file,
                    progress=lambda done, total: None,
                    stdout_path=partial,
                    tar_ok=(0, 2),  # 2: no such member
                    what=f"reading {path} out of the backup",
                )
                if partial.stat().st_size == 0:
                    raise _NotInBackup(path)
        except _NotInBackup:
            continue
        return True
    return False
