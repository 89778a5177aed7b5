"""`mkmedia format --tape` and `mkmedia tape verify`: a tape's header written, a tape walked.

verify reads the whole tape and writes nothing: our label; on an OBDR tape the 10 KiB header,
the ISO's 2048-byte records (its El Torito boot record, its size and sha256 against the label
and against the output manifest's ISO), the filemark; then the backup's manifest and its
stream to the end (size and sha256 against that manifest).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

from mkmedia.emit.tapewrite import check_target, write_tape
from mkmedia.session.artifacts import Artifact
from rescue_runtime.errors import UsageError
from rescue_runtime.tape import label_at, open_tape
from rescue_runtime.tape.base import EndOfMedium, Tape, TapeError
from rescue_runtime.tape.label import Label
from rescue_runtime.tape.layout import (
    HEADER_RECORDS,
    HEADER_SIZE,
    ISO_BLOCK,
    find_backup,
    read_label,
    stream_backup,
    write_plain,
)

# ISO 9660: the volume descriptors from block 16 on, up to a terminator (type 255); El
# Torito's boot record is the one of type 0 with its system identifier.
FIRST_DESCRIPTOR, LAST_DESCRIPTOR = 16, 64
EL_TORITO = b"\0CD001\x01EL TORITO SPECIFICATION"


def format_tape(target: str, *, force: bool, yes: bool, epoch: int) -> Artifact:
    """Write our blank label (and the end of data) onto `target`; a tape holding another
    program's data needs `force`, one holding an mkmedia backup `yes` (or YES typed)."""
    check_target(target, force=force, setting="", force_hint="add --force")
    try:
        label = label_at(target)
    except TapeError:
        label = None  # a new image, or a blank tape
    if label is not None and label.kind != "blank" and not yes:
        question = (
            f"The tape {target} holds an mkmedia {label.kind} tape of host {label.host}; "
            "formatting it loses that."
        )
        if not sys.stdin.isatty():
            raise UsageError(f"{question} Nothing was written.", hint="Add --yes to go on.")
        answer = input(f"{question} Type YES to go on: ")
        if answer.strip() != "YES":
            raise UsageError("Nothing was written: the answer was not YES.")
    blank = Label("blank", written=epoch)
    return write_tape(target, lambda t: write_plain(t, blank, None), "tape")


def _iso_checks(tape: Tape, label: Label, iso_sha256: str | None) -> list[str]:
    for number in range(1, HEADER_RECORDS):
        record = tape.read_record(ISO_BLOCK)
        if len(record) != HEADER_SIZE or record.strip(b"\0"):
            raise TapeError(
                f"Record {number + 1} of the OBDR header on {tape.name} is not 512 zero bytes "
                f"({len(record)} bytes)."
            )
    digest = hashlib.sha256()
    blocks = 0
    boot_record = False
    while record := tape.read_record(ISO_BLOCK):
        if len(record) != ISO_BLOCK:
            raise TapeError(
                f"ISO record {blocks + 1} on {tape.name} has {len(record)} bytes, not 2048."
            )
        if FIRST_DESCRIPTOR <= blocks <= LAST_DESCRIPTOR and record.startswith(EL_TORITO):
            boot_record = True
        digest.update(record)
        blocks += 1
    lines = [f"header: 20 records of 512 bytes, label of host {label.host}"]
    if not boot_record:
        raise TapeError(
            f"The ISO on {tape.name} has no El Torito boot record, so the drive's CD "
            "emulation would not boot it."
        )
    size, sha = blocks * ISO_BLOCK, digest.hexdigest()
    if size != label.iso_size or sha != label.iso_sha256:
        raise TapeError(
            f"The ISO on {tape.name} ({size} bytes) differs from what its label recorded "
            f"({label.iso_size} bytes): it is damaged."
        )
    if iso_sha256 is not None and sha != iso_sha256:
        raise TapeError(
            f"The ISO on {tape.name} is not the ISO of the output manifest (sha256 {sha} "
            f"against {iso_sha256}).",
            hint="The tape holds another build's media; write it again or verify it against "
            "its own manifest (--manifest).",
        )
    against = "label and output manifest" if iso_sha256 else "label"
    lines.append(
        f"ISO: {blocks} records of 2048 bytes, El Torito boot record, sha256 as its {against}"
    )
    return lines


def manifest_iso_sha256(manifest: Path | None) -> str | None:
    """The sha256 of the ISO an output manifest lists (None: no manifest or no ISO)."""
    if manifest is None or not manifest.is_file():
        return None
    document = json.loads(manifest.read_text())
    for artifact in document.get("artifacts", []):
        if artifact.get("kind") == "iso":
            return str(artifact["sha256"])
    return None


def verify_tape(target: str, manifest: Path | None = None) -> list[str]:
    """Walk the whole tape (see the module's text); the lines say what was checked."""
    tape = open_tape(target)
    try:
        label, first = read_label(tape)
        if label is None:
            what = "is blank" if first is None else "does not start with an mkmedia label"
            raise TapeError(f"The tape {target} {what}: nothing of mkmedia's to verify.")
        lines = [f"{target}: mkmedia {label.kind} tape"]
        if label.kind == "obdr":
            lines += _iso_checks(tape, label, manifest_iso_sha256(manifest))
        label, on_tape = find_backup(tape)
        if on_tape is None:
            lines.append("backup: none on this tape")
            return lines
        sha = stream_backup(tape, on_tape, lambda piece: None)
        try:
            end = tape.read_record(ISO_BLOCK)
        except EndOfMedium:
            end = b"?"
        if end != b"":
            raise TapeError(f"The backup stream on {target} is not closed by two filemarks.")
        files = on_tape.manifest.get("files")
        lines.append(
            f"backup: {files} files, stream readable to its end, sha256 {sha[:16]}... as its "
            "manifest"
        )
        return lines
    finally:
        tape.close()
