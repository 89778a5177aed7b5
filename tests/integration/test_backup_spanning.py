"""An iso:// backup over several media: the builder's split (plan_media, spread, the volume
ISOs read back with xorriso) and the rescue system's volume walk on real files with real
tar, zstd, openssl and cat — media asked for in turn, checked as they come, a missing one
refused unattended. The drives are the fake /sys and mounter of test_backup_medium: this
host's kernel cannot mount ISO 9660, so real drives are a guest's (tests/vm/
test_spanned_iso_guest.py boots the rescue ISO with the volume ISO in a second CD drive).

Needs root (make_rich_tree: mknod, setcap, chown).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from mkmedia.emit import isovolumes
from mkmedia.recoverdemo import extract_iso_directory
from rescue_runtime.backup import restore, spanning
from rescue_runtime.backup.manifest import MANIFEST_NAME, BackupError
from rescue_runtime.backup.medium import marker_path
from rescue_runtime.backup.netfs import Netfs
from rescue_runtime.backup.sources import BackupPlan, Source
from rescue_runtime.backup.spanmedia import (
    FurtherMedia,
    IsoMediumFinder,
    further_media,
    missing_media,
    refuse_missing,
)
from rescue_runtime.errors import ConfigError, MissingError
from rescue_runtime.run import which
from tests.backupsource import quiet
from tests.loopfs import BACKUP_TEST_MARKS
from tests.metadata import differences, make_rich_tree, snapshot
from tests.unit.test_backup_medium import MEDIUM_ID, FakeMounter, FakeSystem

pytestmark = BACKUP_TEST_MARKS
VOLUME = 64 * 1024
PER_MEDIUM = 3  # volumes on each medium with the capacity below
CAPACITY = isovolumes.ISO_OVERHEAD + PER_MEDIUM * VOLUME + VOLUME // 2
KEY = "S" * 16 + "c3Bhbm5pbmctdGVzdC1rZXk=\n"


def spanned_backup(tmp_path: Path) -> tuple[Path, Path, list[tuple[spanning.Medium, Path]], Path]:
    """(the tree, the first medium's backup directory, the further media, the key file)."""
    tree = tmp_path / "system"
    tree.mkdir()
    make_rich_tree(tree)
    for n in range(6):
        (tree / f"random-{n}.bin").write_bytes(os.urandom(100_000))
    key = tmp_path / "backup.key"
    key.write_text(KEY)
    plan = BackupPlan(str(tree), [Source("/", "mount", "/dev/x", "ext4")])
    payload = tmp_path / "payload" / "backup"
    manifest = Netfs.backup(
        plan, payload, url="iso:///backup", layout_sha256=None, progress=quiet,
        volume_size=VOLUME, key_file=key,
    )  # fmt: skip
    listed = [(str(v["name"]), int(str(v["size"]))) for v in manifest["volumes"]]  # type: ignore[attr-defined]
    media = isovolumes.plan_media(listed, capacity=CAPACITY, first_reserve=0)
    assert [len(m) for m in media[:-1]] == [PER_MEDIUM] * (len(media) - 1) and len(media) >= 3
    further = isovolumes.spread(payload, media, MEDIUM_ID, tmp_path / "staging")
    return tree, payload, further, key


def medium_trees(tmp_path: Path, further: list[tuple[spanning.Medium, Path]]) -> list[Path]:
    """What each further disc holds: its marker and its volumes under backup/."""
    trees = []
    for medium, directory in further:
        top = tmp_path / "discs" / f"{medium.number:03d}"
        (top / marker_path(medium.marker_id)).parent.mkdir(parents=True)
        (top / marker_path(medium.marker_id)).write_text("backup medium\n")
        shutil.copytree(directory, top / "backup")
        trees.append(top)
    return trees


def test_media_are_asked_for_in_turn_and_the_tree_comes_back(tmp_path: Path) -> None:
    tree, payload, further, key = spanned_backup(tmp_path)
    before = snapshot(tree, skip=())
    total = 1 + len(further)
    assert sorted(p.name for p in payload.iterdir())[:2] == [MANIFEST_NAME, spanning.MEDIA_NAME]
    discs = medium_trees(tmp_path, further)
    system = FakeSystem(tmp_path / "machine")
    system.add("sr0", iso=True)  # the one drive; the first disc is the payload itself
    empty = tmp_path / "discs" / "none"
    empty.mkdir()
    mounter = FakeMounter({"sr0": empty})
    questions: list[str] = []
    released: list[bool] = []

    def operator(question: str, default: str) -> str:
        """Inserts the disc asked for (the next one each time)."""
        questions.append(question)
        mounter.trees["sr0"] = discs[len(questions) - 1]
        return ""

    finder = IsoMediumFinder(
        "backup",
        tmp_path / "work",
        ask=operator,
        release=lambda: released.append(True),
        blocks=system.blocks,
        mounter=mounter,
    )
    target = tmp_path / "restored"
    target.mkdir()
    result = restore.restore(payload, target, key_file=key, progress=quiet, finder=finder)
    assert differences(before, snapshot(target, skip=())) == []
    assert result["files"] == len(before)
    assert [q.split(" (")[0] for q in questions] == [
        f"Insert backup medium {n} of {total}" for n in range(2, total + 1)
    ]
    assert released and mounter.mounted == {}


def test_unattended_missing_medium_and_damaged_volume_are_refused(tmp_path: Path) -> None:
    _, payload, further, key = spanned_backup(tmp_path)
    total = 1 + len(further)
    discs = medium_trees(tmp_path, further)
    system = FakeSystem(tmp_path / "machine")
    system.add("sr0", iso=True)
    system.add("sr1", iso=True)
    mounter = FakeMounter({"sr0": discs[0]})  # the last medium is in no drive
    missing, _ = missing_media(
        [m for m, _ in further], tmp_path / "work", blocks=system.blocks, mounter=mounter
    )
    assert missing == [further[-1][0]]
    message = str(refuse_missing(missing, total))
    assert f"backup medium {total} of {total}" in message and "nothing was touched" in message

    finder = IsoMediumFinder(
        "backup", tmp_path / "work", ask=None, blocks=system.blocks, mounter=mounter
    )
    target = tmp_path / "restored"
    target.mkdir()
    with pytest.raises(MissingError, match=f"backup medium {total} of {total}"):
        restore.restore(payload, target, key_file=key, progress=quiet, finder=finder)

    # Every disc present, but one volume on the last is damaged: found before it is fed.
    mounter.trees["sr1"] = discs[-1]
    victim = discs[-1] / "backup" / further[-1][0].volumes[0]
    victim.write_bytes(victim.read_bytes()[:-1] + b"\0")
    shutil.rmtree(target)
    target.mkdir()
    with pytest.raises(BackupError, match="does not match its size and sha256"):
        restore.restore(payload, target, key_file=key, progress=quiet, finder=finder)
    assert mounter.mounted == {}

    # Without a way to reach the other media (recover --demo on the host), a clear refusal.
    with pytest.raises(BackupError, match="spans several media"):
        restore.restore(payload, tmp_path / "payload", key_file=key, progress=quiet)


def test_further_media_as_verify_and_the_demo_reach_them(tmp_path: Path) -> None:
    """spanmedia.further_media, shared by recover's verify and recover --demo: unattended, a
    medium in no drive is named before anything is restored and the present ones are
    checked; interactive, nothing is searched until restore asks."""
    tree, payload, further, key = spanned_backup(tmp_path)
    total = 1 + len(further)
    discs = medium_trees(tmp_path, further)
    system = FakeSystem(tmp_path / "machine")
    for n in range(len(discs)):
        system.add(f"sr{n}", iso=True)
    mounter = FakeMounter({"sr0": discs[0]})
    manifest = restore.check(payload, key_file=key)
    protected: set[str] = set()

    def reach(ask: Callable[[str, str], str] | None) -> FurtherMedia | None:
        return further_media(
            payload,
            manifest,
            tmp_path / "work",
            ask=ask,
            protected=protected,
            blocks=system.blocks,
            mounter=mounter,
        )

    with pytest.raises(MissingError, match=f"backup medium {total} of {total}"):
        reach(None)
    assert len(protected) == 1  # the one present medium's drive, refusal or not
    searched = len(mounter.calls)
    asked = reach(lambda question, default: default)
    assert asked is not None and asked.note.endswith("restore asks for each in turn")
    assert len(mounter.calls) == searched  # restore asks, medium by medium
    mounter.trees.update({f"sr{n}": disc for n, disc in enumerate(discs)})
    found = reach(None)
    assert found is not None and found.note.endswith("all present and checked")
    assert len(protected) == len(discs) and mounter.mounted == {}
    target = tmp_path / "restored"
    target.mkdir()
    before = snapshot(tree, skip=())
    restore.restore(payload, target, key_file=key, progress=quiet, finder=found.finder)
    assert differences(before, snapshot(target, skip=())) == []


def test_volume_isos_carry_their_marker_and_volumes(tmp_path: Path) -> None:
    if which("xorriso") is None:
        pytest.skip("xorriso missing")
    _, _, further, _ = spanned_backup(tmp_path)
    medium, directory = further[0]
    iso = tmp_path / "out" / "rescue-vol002.iso"
    artifact = isovolumes.write_volume_iso(
        iso,
        medium=medium,
        directory=directory,
        host="vm.example.org",
        total=1 + len(further),
        epoch=1_700_000_000,
        work_dir=tmp_path / "iso-work",
    )
    assert artifact.path == iso and artifact.kind == "iso-volume"
    copy = extract_iso_directory(iso, "backup", tmp_path / "read-back")
    assert sorted(p.name for p in copy.iterdir()) == sorted(medium.volumes)
    for name in medium.volumes:
        assert (copy / name).read_bytes() == (directory / name).read_bytes()
    mark = extract_iso_directory(iso, "mkmedia", tmp_path / "read-back")
    assert [p.name for p in mark.iterdir()] == [Path(marker_path(medium.marker_id)).name]


def test_a_volume_larger_than_a_medium_is_refused() -> None:
    with pytest.raises(ConfigError, match="BACKUP_VOLUME_SIZE"):
        isovolumes.plan_media([("v.001", 10 * 1024**2)], capacity=8 * 1024**2, first_reserve=0)
    fits = isovolumes.plan_media(
        [("v.001", 1024**2), ("v.002", 1024**2)],
        capacity=isovolumes.ISO_OVERHEAD + 1024**2,
        first_reserve=0,
    )
    assert fits == [["v.001"], ["v.002"]]


def test_mkbackup_steps_spread_the_backup_and_write_the_volume_isos(tmp_path: Path) -> None:
    """The backup stage's split and the output stage's ISOs, on a context of plain values."""
    from types import SimpleNamespace
    from typing import Any, cast

    from mkmedia.steps import backup as steps

    if which("xorriso") is None:
        pytest.skip("xorriso missing")
    tree = tmp_path / "system"
    tree.mkdir()
    (tree / "data.bin").write_bytes(os.urandom(3 * 1024**2))
    payload = tmp_path / "payload" / "backup"
    plan = BackupPlan(str(tree), [Source("/", "mount", "/dev/x", "ext4")])
    manifest = Netfs.backup(
        plan, payload, url="iso:///backup", layout_sha256=None, progress=quiet,
        volume_size=1024**2,
    )  # fmt: skip
    kernel = tmp_path / "vmlinuz"
    kernel.write_bytes(b"k" * 1024**2)
    values = {"ISO_MAX_SIZE": 8, "BACKUP_VOLUME_SIZE": 1, "OUTPUT_PREFIX": "rescue"}
    config = SimpleNamespace(
        get_int=values.__getitem__,
        get_str=values.__getitem__,
        system=SimpleNamespace(hostname="vm.example.org"),
    )
    staging = tmp_path / "staging"
    staging.mkdir()
    ctx = cast(
        Any,
        SimpleNamespace(
            config=config, kernel_image=kernel, initrd=None, medium_id=MEDIUM_ID,
            build_dir=tmp_path / "build", output_staging=staging, artifacts=[], volume_media=[],
        ),
    )  # fmt: skip
    steps._spread_over_media(ctx, payload, manifest["volumes"])  # type: ignore[arg-type]
    media = spanning.read_media_file(payload)
    assert [m.number for m in media] == [2]  # 4 volumes: 3 beside the 1 MiB kernel, 1 after
    assert len(media[0].volumes) == 1 and len(list(payload.glob("backup.tar.zst.*"))) == 3
    steps.write_volume_media(ctx)
    assert [a.path.name for a in ctx.artifacts] == ["rescue-vol002.iso"]
    copy = extract_iso_directory(staging / "rescue-vol002.iso", "backup", tmp_path / "back")
    assert sorted(p.name for p in copy.iterdir()) == list(media[0].volumes)
