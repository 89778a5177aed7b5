"""The data path of NETFS: `tar | zstd -T0 [| openssl enc] [| split]` to write an archive,
`[cat volumes |] [openssl enc -d |] zstd -d | tar` to read it back.

Python builds the command lines and starts them; the kernel's pipes carry the data. The
archive options are the same on both sides (TAR_METADATA).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rescue_runtime.backup import crypt, volumes
from rescue_runtime.backup.progress import ProgressFunc, read_bytes
from rescue_runtime.run import PipelineResult, pipeline

# The same metadata options on both sides: numeric owners, sparse files, every xattr (user.*
# and security.capability too: ReaR's defaults drop user.*), POSIX ACLs, SELinux labels.
TAR_METADATA = (
    "--format=posix",
    "--numeric-owner",
    "--sparse",
    "--xattrs",
    "--xattrs-include=*",
    "--acls",
    "--selinux",
)
# Reading the stream back: 128 KiB records (zstd's output block), reassembled from the pipe's
# shorter reads, instead of tar's 10 KiB. A record is also the largest piece tar writes into a
# file at once, so this cuts tar's read and write calls by 12; under software emulation that
# took a third off the extraction (bench/bench_restore.py). The archive itself is unchanged.
TAR_READ = ("--blocking-factor=256", "--read-full-records")
TAR_WARNING = 1  # GNU tar: "some files changed while being read" (a live system)


@dataclass(frozen=True)
class Stream:
    """How an archive's bytes are stored: compressed, maybe encrypted, maybe cut."""

    key_file: Path | None = None  # encrypt with this key file (crypt.py)
    volume_size: int = 0  # bytes per volume; 0: one volume
    zstd_level: int = 3


def write(
    tar: Sequence[str],
    directory: Path,
    stream_name: str,
    stream: Stream,
    *,
    progress: ProgressFunc,
    total: int,
) -> tuple[PipelineResult, list[tuple[Path, str]]]:
    """Run `tar` (writing to stdout) through the stream into partials in `directory`;
    returns the result and (partial, final name) of each volume, in order."""
    commands: list[list[str]] = [list(tar), ["zstd", "-T0", f"-{stream.zstd_level}", "-q", "-c"]]
    if stream.key_file is not None:
        commands.append(crypt.encrypt_argv(stream.key_file))
    stdout: Path | None = None
    if stream.volume_size:
        commands.append(volumes.split_argv(directory, stream_name, stream.volume_size))
    else:
        stdout = volumes.single_partial(directory, stream_name)
    ok_codes: list[tuple[int, ...]] = [(0, TAR_WARNING)] + [(0,)] * (len(commands) - 1)
    result = pipeline(
        commands,
        stdout_path=stdout,
        ok_codes=ok_codes,
        on_tick=lambda pids: progress(read_bytes(pids[0]), total),
        what=f"backing up into {directory}",
    )
    return result, volumes.written_partials(directory, stream_name, stream.volume_size)


def decoders(encryption: dict[str, object] | None, key_file: Path | None) -> list[list[str]]:
    """The commands between the volumes and tar: decrypt (when encrypted), decompress."""
    commands: list[list[str]] = []
    if encryption is not None:
        assert key_file is not None  # crypt.check_sealed refused before
        commands.append(crypt.decrypt_argv(key_file, int(str(encryption["iterations"]))))
    commands.append(["zstd", "-d", "-q", "-c"])
    return commands


def read(
    paths: list[Path],
    tar: Sequence[str],
    *,
    encryption: dict[str, object] | None,
    key_file: Path | None,
    progress: ProgressFunc,
    what: str,
    stdout_path: Path | None = None,
    tar_ok: tuple[int, ...] = (0,),
) -> PipelineResult:
    """Feed the volumes in order through the decoders into `tar` (reading stdin)."""
    first, stdin = volumes.reader(paths)
    commands = [*first, *decoders(encryption, key_file), list(tar)]
    size = sum(os.stat(p).st_size for p in paths)
    # cat and the decoders stop early when tar is done (extract_member): a broken pipe.
    early = (0, 1, -13) if tar_ok != (0,) else (0,)
    return pipeline(
        commands,
        stdin_path=stdin,
        stdout_path=stdout_path,
        ok_codes=[early] * (len(commands) - 1) + [tar_ok],
        on_tick=lambda pids: progress(read_bytes(pids[0]), size),
        what=what,
    )
