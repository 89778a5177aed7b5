"""Backup encryption with a key file: `openssl enc -aes-256-ctr -pbkdf2` in the stream.

Why openssl: it is in every Debian install (and so on the rescue system without a new
package), it streams at disk speed, and `-pass file:KEY` reads the key from a file, never from
a command line. CTR mode is not authenticated by itself, so the manifest carries an HMAC made
with the same key over everything it says (every volume's size and sha256): a changed volume
or manifest is found by verify, before any write, and so is a wrong key.

The key file is one line of at least 32 printable ASCII characters (openssl's `file:` reads
the first line only: a binary key could end at its first newline byte). Make one with
`openssl rand -base64 48 > KEYFILE`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import string
from pathlib import Path

from rescue_runtime.errors import ConfigError, MissingError, MkmediaError

CIPHER = "aes-256-ctr"
PROGRAMS = ("openssl",)  # what the rescue system needs to restore an encrypted backup
PBKDF2_ITERATIONS = 200_000  # openssl's and our key check's, recorded in the manifest
MIN_KEY_CHARS = 32
HMAC_FIELD = "manifest_hmac"
_PRINTABLE = frozenset(string.printable) - frozenset("\t\n\r\x0b\x0c")


class CryptKeyError(MkmediaError):
    """The key file is missing, malformed or not this backup's key (before any write)."""


def read_key(path: Path) -> bytes:
    """The key file's passphrase as openssl reads it; ConfigError when it is not usable."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise MissingError(
            f"The backup key file {path} (BACKUP_CRYPT_KEY_FILE) does not exist.",
            hint="Put the key file there (it is never on the backup target or the rescue "
            "medium: bring it on a separate stick), or correct BACKUP_CRYPT_KEY_FILE.",
        ) from None
    except OSError as exc:
        raise ConfigError(f"The backup key file {path} cannot be read: {exc}.") from None
    text = data.decode("ascii", errors="replace")
    line = text[:-1] if text.endswith("\n") else text
    if "\n" in line or len(line) < MIN_KEY_CHARS or not set(line) <= _PRINTABLE or " " in line:
        raise ConfigError(
            f"The backup key file {path} must hold one line of at least {MIN_KEY_CHARS} "
            "printable characters without spaces (openssl reads only a file's first line).",
            hint=f"Make one with `openssl rand -base64 48 > {path}` and keep a copy away from "
            "the backup.",
        )
    return line.encode()


def check_key_mode(path: Path) -> str | None:
    """A warning when others may read the key file."""
    mode = os.stat(path).st_mode & 0o077
    return f"the backup key file {path} is readable by others (chmod 600)" if mode else None


def encrypt_argv(key_file: Path) -> list[str]:
    return [
        "openssl", "enc", "-e", f"-{CIPHER}", "-pbkdf2", "-iter", str(PBKDF2_ITERATIONS),
        "-salt", "-pass", f"file:{key_file}",
    ]  # fmt: skip


def decrypt_argv(key_file: Path, iterations: int) -> list[str]:
    return [
        "openssl", "enc", "-d", f"-{CIPHER}", "-pbkdf2", "-iter", str(iterations),
        "-pass", f"file:{key_file}",
    ]  # fmt: skip


def _mac_key(key: bytes, salt: bytes, iterations: int) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", key, b"mkmedia manifest " + salt, iterations)


def _canonical(document: dict[str, object]) -> bytes:
    body = {k: v for k, v in document.items() if k != HMAC_FIELD}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def seal(document: dict[str, object], key: bytes) -> None:
    """Record the encryption and the manifest's HMAC in `document` (the last change to it)."""
    salt = os.urandom(16)
    document["encryption"] = {
        "tool": "openssl enc -pbkdf2",
        "cipher": CIPHER,
        "iterations": PBKDF2_ITERATIONS,
        "mac_salt": salt.hex(),
    }
    mac = hmac.new(_mac_key(key, salt, PBKDF2_ITERATIONS), _canonical(document), "sha256")
    document[HMAC_FIELD] = mac.hexdigest()


def encryption(document: dict[str, object]) -> dict[str, object] | None:
    found = document.get("encryption")
    return found if isinstance(found, dict) else None


def check_sealed(document: dict[str, object], key_file: Path | None, where: Path) -> None:
    """An encrypted backup's manifest is checked with the key: the right key and an unchanged
    manifest, or CryptKeyError (MissingError without a key file). Writes nothing."""
    info = encryption(document)
    if info is None:
        return
    if key_file is None:
        raise MissingError(
            f"The backup in {where} is encrypted and no key file was given; nothing was "
            "restored or written.",
            hint="Put the backup's key file where BACKUP_CRYPT_KEY_FILE says (bring it on a "
            "separate stick) and run the command again.",
        )
    key = read_key(key_file)
    salt = bytes.fromhex(str(info["mac_salt"]))
    iterations = int(str(info["iterations"]))
    mac = hmac.new(_mac_key(key, salt, iterations), _canonical(document), "sha256").hexdigest()
    if not hmac.compare_digest(mac, str(document.get(HMAC_FIELD, ""))):
        raise CryptKeyError(
            f"The key file {key_file} does not open the backup in {where} (or its manifest "
            "was changed): the manifest's HMAC does not match; nothing was restored or written.",
            hint="Use the key file the backup was made with.",
        )
