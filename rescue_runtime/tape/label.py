"""Our tape label: the first record (512 bytes) of every tape mkmedia writes.

A magic line, then one line of JSON, zeros to the end of the record. It says what the tape
holds (`obdr`: the bootable ISO follows, then the backup; `plain`: the backup only; `blank`:
made by `mkmedia format --tape`), for which host and medium, and the ISO's size and sha256,
so a reader knows the tape before reading on and a writer knows it may overwrite it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from rescue_runtime.tape.base import TapeError

MAGIC = b"MKMEDIA TAPE LABEL 1\n"
RECORD_SIZE = 512
KINDS = ("obdr", "plain", "blank")


@dataclass(frozen=True)
class Label:
    kind: str
    host: str = ""
    medium_id: str = ""  # obdr: the marker id of the ISO on the tape (rescue.json)
    written: int = 0  # SOURCE_DATE_EPOCH of the run that wrote it
    iso_size: int = 0
    iso_sha256: str = ""
    block_size: int = 0  # the backup's record size (0: no backup)

    def record(self) -> bytes:
        body = MAGIC + json.dumps(asdict(self), sort_keys=True).encode() + b"\n"
        if len(body) > RECORD_SIZE:
            raise TapeError(f"The tape label is {len(body)} bytes, more than one record.")
        return body.ljust(RECORD_SIZE, b"\0")


def parse(record: bytes, where: str) -> Label | None:
    """The label in a tape's first record; None when the record is not ours."""
    if not record.startswith(MAGIC):
        return None
    text = record[len(MAGIC) :].split(b"\n", 1)[0]
    try:
        fields = json.loads(text)
        label = Label(**fields)
    except (ValueError, TypeError) as exc:
        raise TapeError(
            f"The mkmedia label of {where} cannot be read ({exc}).",
            hint="The tape was damaged; write it again (`mkmedia format --tape`).",
        ) from None
    if label.kind not in KINDS:
        raise TapeError(f"The mkmedia label of {where} names an unknown kind {label.kind!r}.")
    return label
