"""The chain rules of incremental and differential backups (rescue_runtime/backup/chain.py)
and the key file rules of encrypted ones (crypt.py), without tar."""

from __future__ import annotations

from pathlib import Path

import pytest

from rescue_runtime.backup import chain, crypt
from rescue_runtime.backup.manifest import BackupError
from rescue_runtime.errors import ConfigError, MissingError

FULL = chain.Archive("backup", "full", 0, None, ("backup.tar.zst",), 10, "backup.snar", "a")


def incremental(number: int, before: chain.Archive) -> chain.Archive:
    name = f"backup-{number:03d}-incremental"
    return chain.Archive(
        name, "incremental", before.level + 1, before.name, (f"{name}.tar.zst",), 2, "s", "b"
    )


def test_next_archive_follows_the_type_and_the_chain() -> None:
    assert chain.plan_next("incremental", None).type == "full"
    first = chain.plan_next("incremental", [FULL])
    assert (first.name, first.level, first.predecessor) == ("backup-001-incremental", 1, FULL)
    one = incremental(1, FULL)
    second = chain.plan_next("incremental", [FULL, one])
    assert (second.name, second.level, second.kept) == ("backup-002-incremental", 2, (FULL, one))
    diff = chain.plan_next("differential", [FULL, one])
    assert (diff.level, diff.predecessor, diff.kept) == (1, FULL, (FULL,))
    assert diff.name == "backup-002-differential"  # never the name of a file still listed
    assert chain.plan_next("full", [FULL, one]).kept == ()
    plain = chain.Archive("backup", "full", 0, None, ("backup.tar.zst",), 10)
    assert chain.plan_next("incremental", [plain]).type == "full"  # no snapshot to build on


def test_a_broken_chain_names_its_missing_link(tmp_path: Path) -> None:
    one = incremental(1, FULL)
    two = incremental(2, one)
    listed = {v for a in (FULL, one, two) for v in a.volumes}
    chain.check_chain([FULL, one, two], listed, tmp_path)
    with pytest.raises(BackupError, match="link backup-001-incremental is missing"):
        chain.check_chain([FULL, two], listed, tmp_path)
    with pytest.raises(BackupError, match="not a full one"):
        chain.check_chain([one, two], listed, tmp_path)
    with pytest.raises(BackupError, match=r"no checked volume backup-002-incremental\.tar\.zst"):
        chain.check_chain([FULL, one, two], listed - set(two.volumes), tmp_path)


def test_old_manifests_are_one_full_archive() -> None:
    document: dict[str, object] = {"files": 7, "volumes": [{"name": "backup.tar.zst"}]}
    assert chain.archives(document) == [
        chain.Archive("backup", "full", 0, None, ("backup.tar.zst",), 7)
    ]


def test_key_files_are_one_long_line(tmp_path: Path) -> None:
    key = tmp_path / "key"
    for text in ("short\n", "x" * 40 + "\nsecond line\n", "with space " * 4, "\x00" * 40):
        key.write_text(text)
        with pytest.raises(ConfigError, match="openssl rand -base64 48"):
            crypt.read_key(key)
    key.write_text("k" * 40 + "\n")
    assert crypt.read_key(key) == b"k" * 40
    with pytest.raises(MissingError, match="separate stick"):
        crypt.read_key(tmp_path / "absent")


def test_the_seal_finds_a_change_and_a_wrong_key(tmp_path: Path) -> None:
    document: dict[str, object] = {"files": 3, "volumes": [{"name": "v", "sha256": "00"}]}
    crypt.seal(document, b"r" * 40)
    right, wrong = tmp_path / "right", tmp_path / "wrong"
    right.write_text("r" * 40)
    wrong.write_text("w" * 40)
    crypt.check_sealed(document, right, tmp_path)
    with pytest.raises(crypt.CryptKeyError):
        crypt.check_sealed(document, wrong, tmp_path)
    document["files"] = 4
    with pytest.raises(crypt.CryptKeyError, match="manifest was changed"):
        crypt.check_sealed(document, right, tmp_path)
    with pytest.raises(MissingError, match="no key file"):
        crypt.check_sealed(document, None, tmp_path)
