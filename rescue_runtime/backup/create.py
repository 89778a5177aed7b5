"""Making one NETFS archive: plan the chain link, run the stream, describe it in the manifest.

Everything is written under `.partial` names first; commit.py puts the volumes, the snapshot
file and the manifest under their final names only once the stream has completed.
"""

from __future__ import annotations

import datetime
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from rescue_runtime.backup import chain, commit, crypt, volumes
from rescue_runtime.backup import manifest as manifests
from rescue_runtime.backup.archive import TAR_METADATA, Stream, write
from rescue_runtime.backup.manifest import BackupError
from rescue_runtime.backup.progress import ProgressFunc, ProgressLine
from rescue_runtime.backup.sources import BackupPlan
from rescue_runtime.run import run


@dataclass(frozen=True)
class Request:
    """What the caller asks for besides the plan and the directory."""

    url: str
    layout_sha256: str | None
    keep_old: bool = False
    backup_type: str = "full"
    stream: Stream = field(default_factory=Stream)
    tar_options: tuple[str, ...] = ()


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def tool_version(program: str) -> str:
    result = run([program, "--version"], check=False)
    lines = (result.stdout or result.stderr).strip().splitlines()
    return lines[0] if lines else "unknown"


def tar_exclude_options(plan: BackupPlan, work: Path) -> list[str]:
    """tar options for the plan's patterns: absolute ones anchored on the "./..." member
    names (ReaR's --anchored), relative ones ("*.tmp") matched at any depth."""
    patterns = [e.pattern for e in plan.exclusions if e.tar]
    anchored = [f".{p}" for p in patterns if p.startswith("/")]
    exclude_file = work / "exclude"
    exclude_file.write_text("".join(f"{p}\n" for p in anchored))
    options = ["--anchored", "--no-wildcards-match-slash", f"--exclude-from={exclude_file}"]
    relative = [p for p in patterns if not p.startswith("/")]
    if relative:
        # --no-anchored applies to the --exclude options after it
        options += ["--no-anchored", *(f"--exclude={p}" for p in relative)]
    return options


def _count_lines(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(1 for _ in f)


def previous_chain(directory: Path, key_file: Path | None) -> list[chain.Archive] | None:
    """The chain already in `directory` that an incremental run builds on (None: none),
    checked: its manifest (with the key when encrypted) and every snapshot file."""
    if not (directory / manifests.MANIFEST_NAME).is_file():
        return None
    document = manifests.read_manifest(directory)
    if bool(crypt.encryption(document)) != (key_file is not None):
        return None  # encryption switched on or off: a new chain starts
    crypt.check_sealed(document, key_file, directory)
    found = chain.archives(document)
    for archive in found:
        if archive.snapshot is None:
            continue
        path = directory / archive.snapshot
        if not path.is_file() or manifests.sha256_file(path) != archive.snapshot_sha256:
            raise BackupError(
                f"The snapshot file {path} of the backup chain in {directory} is missing or "
                "changed, so the next incremental archive cannot be made against it.",
                hint="Make a full backup (BACKUP_TYPE=full) to start a new chain.",
            )
    return found


def make(
    plan: BackupPlan, directory: Path, request: Request, progress: ProgressFunc | None
) -> dict[str, object]:
    """Back up `plan` into `directory`; return the manifest written beside the volumes."""
    if not plan.sources:
        raise BackupError(
            "The saved layout mounts no file system, so there is nothing to back up.",
            hint="Save the layout again (`mkmedia layout save`) on the running system.",
        )
    stream = request.stream
    key = crypt.read_key(stream.key_file) if stream.key_file is not None else None
    directory.mkdir(parents=True, exist_ok=True)
    previous = previous_chain(directory, stream.key_file) if request.backup_type != "full" else None
    nxt = chain.plan_next(request.backup_type, previous)
    stream_name = volumes.stream_name(nxt.name, encrypted=key is not None)
    volumes.remove_partials(directory, stream_name)
    started, t0 = _now(), time.monotonic()
    total = sum(s.used_bytes for s in plan.sources)
    show = progress or ProgressLine("backup")
    incremental = request.backup_type != "full"
    snapshot_name = f"{nxt.name}.snar" if incremental else None
    snapshot_partial = directory / f".{snapshot_name}{volumes.PARTIAL}"
    partials: list[tuple[Path, str]] = []
    with tempfile.TemporaryDirectory(prefix="mkmedia-backup.") as work:
        index = Path(work) / "index"
        listed: list[str] = []
        if snapshot_name is not None:
            snapshot_partial.unlink(missing_ok=True)
            if nxt.predecessor is not None:
                assert nxt.predecessor.snapshot is not None
                shutil.copyfile(directory / nxt.predecessor.snapshot, snapshot_partial)
            listed = [f"--listed-incremental={snapshot_partial}"]
        tar = [
            "tar", "--create", "--file=-", f"--directory={plan.root}", *TAR_METADATA,
            *listed, "--one-file-system", *tar_exclude_options(plan, Path(work)),
            "--warning=no-xdev", "--warning=no-file-ignored", "--totals", "--verbose",
            f"--index-file={index}", *request.tar_options, "--", *[s.member for s in plan.sources],
        ]  # fmt: skip
        try:
            result, partials = write(
                tar, directory, stream_name, stream, progress=show, total=total
            )
            for path, _ in partials:
                commit.fsync(path)
            files = _count_lines(index)
            described = [volumes.describe(path, name) for path, name in partials]
        except BaseException:
            volumes.remove_partials(directory, stream_name)
            snapshot_partial.unlink(missing_ok=True)
            raise
        finally:
            if isinstance(show, ProgressLine):
                show.close()
    match = re.search(r"Total bytes written: (\d+)", result.stderrs[0])
    warnings = [
        line
        for line in result.stderrs[0].splitlines()
        if line.startswith("tar:") and "Total bytes" not in line
    ]
    this = chain.Archive(
        name=nxt.name,
        type=nxt.type,
        level=nxt.level,
        predecessor=nxt.predecessor.name if nxt.predecessor else None,
        volumes=tuple(str(v["name"]) for v in described),
        files=files,
        snapshot=snapshot_name,
        snapshot_sha256=manifests.sha256_file(snapshot_partial) if snapshot_name else None,
    )
    old = manifests.read_manifest(directory) if nxt.kept else None
    kept_volumes = [v for v in (old or {}).get("volumes", []) or [] if _in(v, nxt.kept)]  # type: ignore[attr-defined]
    document: dict[str, object] = {
        "format_version": manifests.FORMAT_VERSION,
        "method": "NETFS",
        "url": request.url,
        "root": plan.root,
        "volumes": [*kept_volumes, *described],
        "archives": [*(a.record() for a in nxt.kept), this.record()],
        "backup_type": request.backup_type,
        "volume_size": stream.volume_size,
        "compression": f"zstd -{stream.zstd_level}",
        "files": files,
        "bytes": int(match.group(1)) if match else 0,
        "filesystems": [s.__dict__ for s in plan.sources if s.kind == "mount"],
        "used_bytes": manifests.used_bytes_by_filesystem(plan.sources),
        "subvolumes": [s.__dict__ for s in plan.sources if s.kind == "subvolume"],
        "exclusions": [e.__dict__ for e in plan.exclusions],
        "layout_sha256": request.layout_sha256,
        "tar_options": list(TAR_METADATA),
        "tools": {"tar": tool_version("tar"), "zstd": tool_version("zstd")},
        "warnings": warnings,
        "started": started,
        "finished": _now(),
        "seconds": round(time.monotonic() - t0, 3),
    }
    if key is not None:
        crypt.seal(document, key)
    new_files = [*partials]
    if snapshot_name is not None:
        new_files.append((snapshot_partial, snapshot_name))
    commit.complete(
        directory, new_files, document, new_chain=not nxt.kept, keep_old=request.keep_old
    )
    return document


def _in(volume: dict[str, object], kept: tuple[chain.Archive, ...]) -> bool:
    return any(volume["name"] in archive.volumes for archive in kept)
