"""The key file of an encrypted backup, in the rescue system.

The key is never on the rescue medium or the backup target: rescue.json carries only its
path (BACKUP_CRYPT_KEY_FILE), and the operator brings the file (a separate stick, scp) and
puts it there, or names another path when asked. Unattended, a missing key stops recover in
verify, before any disk is written.
"""

from __future__ import annotations

from pathlib import Path

from rescue_runtime.backup import crypt
from rescue_runtime.errors import MissingError
from rescue_runtime.recover.ask import Asker

SETTING = "BACKUP_CRYPT_KEY_FILE"


def configured(settings: dict[str, object]) -> Path | None:
    value = str(settings.get(SETTING) or "")
    return Path(value) if value else None


def key_for(
    manifest: dict[str, object],
    settings: dict[str, object],
    *,
    ask: Asker,
    unattended: bool,
    where: Path,
) -> Path | None:
    """The key file for the backup `manifest` describes (None: not encrypted)."""
    if crypt.encryption(manifest) is None:
        return None
    path = configured(settings)
    if path is not None and path.is_file():
        return path
    said = f"at {path} (BACKUP_CRYPT_KEY_FILE)" if path else "(BACKUP_CRYPT_KEY_FILE is empty)"
    if unattended:
        raise MissingError(
            f"The backup in {where} is encrypted and its key file is not {said}; nothing was "
            "touched.",
            hint="Copy the key file there (it is not on the rescue medium or the backup "
            "target) and run `mkmedia recover` again, or run it interactively.",
        )
    while True:
        answer = ask(
            f"The backup is encrypted and no key file is {said}. Path of the key file "
            "(empty: abort)?",
            "",
        )
        if not answer:
            raise MissingError(
                f"Recover needs the key file of the encrypted backup in {where}; nothing was "
                "touched.",
                hint=f"Bring the key file and put it {said}, or name it when asked.",
            )
        if Path(answer).is_file():
            return Path(answer)
        print(f"There is no file {answer}.", flush=True)
