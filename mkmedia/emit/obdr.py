"""OUTPUT=OBDR: a tape that boots as a CD (HP's One-Button Disaster Recovery), then restores
from itself.

The ISO emitter's image is written as always (beside the other media, listed in the
manifest), then onto TAPE_DEVICE (a drive /dev/nstN or a SIMH image NAME.tap) from its
beginning: 20 records of 512 bytes (our label first), the ISO in 2048-byte records, a
filemark, and with `mkmedia mkbackup` and BACKUP_URL=tape://<the same tape> the backup
(rescue_runtime/tape/layout.py has the records).
"""

from __future__ import annotations

from pathlib import Path

from mkmedia.emit import Artifact
from mkmedia.emit.iso import IsoEmitter
from mkmedia.emit.tapewrite import check_target, staged_backup, write_tape
from mkmedia.session.artifacts import sha256_file
from mkmedia.session.epoch import resolve_epoch
from rescue_runtime.errors import ConfigError
from rescue_runtime.tape.label import Label
from rescue_runtime.tape.layout import check_block_size, iso_records, write_obdr

FORCE_HINT = "set TAPE_OVERWRITE=yes to write over it"


class ObdrEmitter(IsoEmitter):
    """The hybrid ISO, written beside the other media and then onto the OBDR tape."""

    name = "OBDR"

    def check(self) -> None:
        if not self.spec.device:
            raise ConfigError(
                "OUTPUT=OBDR but TAPE_DEVICE is empty: mkmedia does not guess which tape to "
                "write over.",
                hint="Set TAPE_DEVICE to the non-rewinding drive (/dev/nst0) or to a tape "
                "image file (/var/lib/mkmedia/obdr.tap).",
            )
        check_block_size(self.spec.tape_block_size)
        check_target(
            self.spec.device,
            force=self.spec.tape_overwrite,
            setting="TAPE_DEVICE",
            force_hint=FORCE_HINT,
        )

    def write(self, *, kernel: Path, initrd: Path, work_dir: Path) -> list[Artifact]:
        self.check()  # again: the tape may have changed while the rescue system was built
        written = super().write(kernel=kernel, initrd=initrd, work_dir=work_dir)
        iso = self.iso_path()
        iso_records(iso)
        backup = staged_backup(self.spec.tape_backup) if self.spec.tape_backup else None
        label = Label(
            "obdr",
            host=self.spec.host,
            medium_id=self.spec.medium_id.upper(),
            written=resolve_epoch(self.spec.source_date_epoch),
            iso_size=iso.stat().st_size,
            iso_sha256=sha256_file(iso),
            block_size=self.spec.tape_block_size if backup else 0,
        )
        tape = write_tape(
            self.spec.device,
            lambda t: write_obdr(t, label, iso, backup, block_size=self.spec.tape_block_size),
            "tape",
        )
        return [*written, tape]


EMITTER = ObdrEmitter
