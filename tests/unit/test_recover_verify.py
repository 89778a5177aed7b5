"""recover's verify stage refuses, before any write, every recovery that cannot succeed, and
says why; and it asks (or, unattended, does not) before the first write."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pytest

from rescue_runtime import rescueconf
from rescue_runtime import workflow as engine
from rescue_runtime.backup import crypt, spanning
from rescue_runtime.backup import manifest as manifests
from rescue_runtime.backup.crypt import CryptKeyError
from rescue_runtime.errors import MissingError, MkmediaError
from rescue_runtime.layout import store
from rescue_runtime.layout.model import Layout
from rescue_runtime.recover import report, verify
from rescue_runtime.recover.ask import Asker
from rescue_runtime.recover.context import STEPS, RecoverContext, RecoverOptions, Subject
from rescue_runtime.recover.workflow import RECOVER
from tests.unit.blockdevices import present


def make_backup(directory: Path, layout_sha256: str, payload: bytes = b"tar stream") -> None:
    directory.mkdir(parents=True)
    (directory / "backup.tar.zst").write_bytes(payload)
    document = {
        "format_version": manifests.FORMAT_VERSION,
        "files": 3,
        "layout_sha256": layout_sha256,
        "volumes": [
            {
                "name": "backup.tar.zst",
                "size": len(payload),
                "sha256": hashlib.sha256(payload).hexdigest(),
            }
        ],
    }
    (directory / manifests.MANIFEST_NAME).write_text(json.dumps(document))


@pytest.fixture
def machine(
    tmp_path: Path, stack_layout: Layout, monkeypatch: pytest.MonkeyPatch
) -> RecoverContext:
    """A context on the RAID1 + LUKS2 + LVM layout with a good file:// backup, every disk
    present and large enough, every program there, inside a rescue system."""
    layout_dir = tmp_path / "layout"
    store.save(stack_layout, layout_dir)
    sha = hashlib.sha256((layout_dir / store.JSON_NAME).read_bytes()).hexdigest()
    make_backup(tmp_path / "backups" / "db7", sha)
    monkeypatch.setattr(verify, "in_rescue_system", lambda: True)
    monkeypatch.setattr(verify, "is_block_device", lambda path: True)
    disks = [present(d.path, d.size, d.serial) for d in stack_layout.disks]
    monkeypatch.setattr(verify.mapping, "present_disks", lambda: disks)
    monkeypatch.setattr(verify.mapping, "MAPPING_FILE", tmp_path / "mappings/disks")
    monkeypatch.setattr(verify, "which", lambda program: f"/usr/bin/{program}")
    monkeypatch.setattr(verify, "WORK_DIR", tmp_path / "work")
    # the file:// share sits on no disk of the layout (tmp_path is on this host's own disk)
    monkeypatch.setattr(verify.medium.SysBlock, "holding", lambda self, path: set())
    config = rescueconf.RescueConfig(
        hostname="db7", backup="NETFS", backup_url=f"file://{tmp_path / 'backups'}"
    )
    return RecoverContext(
        options=RecoverOptions(str(layout_dir), str(tmp_path / "local"), str(tmp_path / "rc")),
        config=config,
        ask=Asker(unattended=False, stdin=io.StringIO("continue\n"), stdout=io.StringIO()),
        stages=RECOVER.stages,
    )


def run_verify(ctx: RecoverContext) -> None:
    planned = engine.plan(RECOVER, STEPS, Subject(unattended=ctx.options.unattended))
    verify_stage = [(stage, steps) for stage, steps in planned if stage == "verify"]
    with ctx.resources:
        engine.run_plan(RECOVER, verify_stage, ctx, hooks_dir=None, env={}, say=lambda _: None)


def test_a_good_machine_passes_verify_with_its_plan(machine: RecoverContext) -> None:
    run_verify(machine)
    assert machine.plan is not None and machine.script is not None
    assert machine.script.is_file()
    assert machine.manifest["files"] == 3
    assert machine.plan.disks == [d.path for d in machine.layout.disks]


def test_outside_a_rescue_system_nothing_runs(
    machine: RecoverContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(verify, "in_rescue_system", lambda: False)
    with pytest.raises(MkmediaError, match="runs only inside the rescue system"):
        run_verify(machine)
    assert machine.script is None


def test_a_media_without_a_backup_method_refuses(machine: RecoverContext) -> None:
    machine.config.backup = "NONE"
    machine.config.backup_url = ""
    with pytest.raises(MkmediaError, match=r"BACKUP=NONE.*layoutonly"):
        run_verify(machine)


def test_a_truncated_backup_is_refused_before_any_write(machine: RecoverContext) -> None:
    volume = Path(machine.config.backup_url.removeprefix("file://")) / "db7/backup.tar.zst"
    volume.write_bytes(volume.read_bytes()[:-2])
    with pytest.raises(MkmediaError, match="truncated"):
        run_verify(machine)
    assert machine.script is None  # it stopped before the plan


def test_a_damaged_backup_is_refused(machine: RecoverContext) -> None:
    volume = Path(machine.config.backup_url.removeprefix("file://")) / "db7/backup.tar.zst"
    volume.write_bytes(b"tar strean")
    with pytest.raises(MkmediaError, match="sha256"):
        run_verify(machine)


def test_a_missing_disk_is_named_with_the_mapping_line(
    machine: RecoverContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, *rest = store.load(machine.options.layout_dir).disks
    others = [present(d.path, d.size, d.serial) for d in rest]
    spare = [present("/dev/sdx", first.size + 1), present("/dev/sdy", first.size + 2)]
    monkeypatch.setattr(verify.mapping, "present_disks", lambda: others + spare)
    with pytest.raises(MkmediaError, match="without a guess") as raised:
        run_verify(machine)
    assert f"{first.path} /dev/sdx" in str(raised.value)  # the line to write
    assert machine.script is None


def test_a_disk_under_another_name_is_mapped_and_the_script_writes_it(
    machine: RecoverContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, *rest = store.load(machine.options.layout_dir).disks
    disks = [present(d.path, d.size, d.serial) for d in rest]
    disks.append(present("/dev/nvme0n1", first.size, first.serial))
    monkeypatch.setattr(verify.mapping, "present_disks", lambda: disks)
    run_verify(machine)
    assert machine.plan is not None and "/dev/nvme0n1" in machine.plan.disks
    assert first.path not in machine.plan.disks
    assert f"{first.path}1" not in machine.plan.script
    assert machine.mapped[first.path] == "/dev/nvme0n1"


def test_a_smaller_disk_is_refused(
    machine: RecoverContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    disks = [present(d.path, d.size - 4096) for d in machine_layout(machine).disks]
    monkeypatch.setattr(verify.mapping, "present_disks", lambda: disks)
    with pytest.raises(MkmediaError, match="too small for the saved layout's data") as caught:
        run_verify(machine)
    # no used bytes in this backup's manifest: every file system keeps its size
    assert "needs 10239 MiB" in str(caught.value) and "offers 10238 MiB" in str(caught.value)
    assert machine.script is None  # stopped before the script was written


def test_the_medium_is_never_a_target(
    machine: RecoverContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second, third = machine_disks(machine)
    monkeypatch.setattr(verify.medium, "rescue_medium_devices", lambda: {first, third})
    with pytest.raises(MkmediaError, match=f"{third} .*holds the rescue medium or the backup"):
        run_verify(machine)
    # one of the RAID1 disks holds it: recover goes on degraded on the other, never on it
    monkeypatch.setattr(verify.medium, "rescue_medium_devices", lambda: {first})
    machine.protected = set()  # a new run
    out = io.StringIO()
    machine.ask = Asker(unattended=False, stdin=io.StringIO("continue\n"), stdout=out)
    run_verify(machine)
    assert machine.plan is not None and machine.plan.disks == [second, third]
    assert "/dev/md0 --run --assume-clean" in machine.plan.script
    assert f"missing {second}2" in machine.plan.script  # slot 0 was on the medium's disk
    assert report.section("raid") and all("degraded" in line for line in report.section("raid"))


def test_a_missing_program_is_named(
    machine: RecoverContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(verify, "which", lambda p: None if p == "mdadm" else f"/sbin/{p}")
    with pytest.raises(MkmediaError, match="needs mdadm, which this rescue system lacks"):
        run_verify(machine)


def test_the_operator_can_abort_and_the_timeout_aborts(machine: RecoverContext) -> None:
    machine.ask = Asker(unattended=False, stdin=io.StringIO("abort\n"), stdout=io.StringIO())
    with pytest.raises(MkmediaError, match="aborted by the operator"):
        run_verify(machine)
    machine.ask = Asker(unattended=False, stdin=io.StringIO(""), stdout=io.StringIO())
    with pytest.raises(MkmediaError, match="aborted"):  # no answer: the safe default
        run_verify(machine)


def test_unattended_refuses_a_luks_volume_nothing_would_open(machine: RecoverContext) -> None:
    # stack_layout's cryptpv: no header backup, and its crypttab line names no key file
    machine.options.unattended = True
    machine.ask = Asker(unattended=True)
    with pytest.raises(MkmediaError, match=r"cryptpv .* names no key file"):
        run_verify(machine)


def test_unattended_asks_nothing(machine: RecoverContext, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verify.finalize, "luks_key_problems", lambda layout, text: [])
    out = io.StringIO()
    machine.options.unattended = True
    machine.ask = Asker(unattended=True, stdin=io.StringIO(""), stdout=out)
    run_verify(machine)
    assert out.getvalue() == ""


def test_a_backup_of_another_layout_is_refused_unattended(machine: RecoverContext) -> None:
    machine.options.unattended = True
    machine.ask = Asker(unattended=True)
    manifest = Path(machine.config.backup_url.removeprefix("file://")) / "db7"
    document = json.loads((manifest / manifests.MANIFEST_NAME).read_text())
    document["layout_sha256"] = "0" * 64
    (manifest / manifests.MANIFEST_NAME).write_text(json.dumps(document))
    with pytest.raises(MkmediaError, match="belongs to another layout"):
        run_verify(machine)


def machine_layout(ctx: RecoverContext) -> Layout:
    return store.load(ctx.options.layout_dir)


def machine_disks(ctx: RecoverContext) -> list[str]:
    return [d.path for d in machine_layout(ctx).disks]


def seal_backup(ctx: RecoverContext, key: str) -> Path:
    """The machine's backup as an encrypted one would be: its manifest sealed with `key`."""
    directory = Path(ctx.config.backup_url.removeprefix("file://")) / "db7"
    document = json.loads((directory / manifests.MANIFEST_NAME).read_text())
    crypt.seal(document, key.encode())
    (directory / manifests.MANIFEST_NAME).write_text(json.dumps(document))
    return directory


GOOD_KEY = "G" * 40


def test_an_encrypted_backup_needs_its_key_before_any_write(
    machine: RecoverContext, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(verify.finalize, "luks_key_problems", lambda layout, text: [])
    seal_backup(machine, GOOD_KEY)
    key = tmp_path / "keys" / "backup.key"
    machine.config.settings["BACKUP_CRYPT_KEY_FILE"] = str(key)
    machine.options.unattended = True
    machine.ask = Asker(unattended=True)
    with pytest.raises(MissingError, match=f"not at {key}"):
        run_verify(machine)
    assert machine.script is None

    key.parent.mkdir()
    key.write_text("W" * 40 + "\n")
    with pytest.raises(CryptKeyError, match="does not open the backup"):
        run_verify(machine)
    assert machine.script is None

    key.write_text(GOOD_KEY + "\n")
    run_verify(machine)
    assert machine.backup_key == key and machine.script is not None


def test_an_encrypted_backup_asks_for_the_key_file_interactively(
    machine: RecoverContext, tmp_path: Path
) -> None:
    seal_backup(machine, GOOD_KEY)
    key = tmp_path / "stick" / "the.key"
    key.parent.mkdir()
    key.write_text(GOOD_KEY)
    out = io.StringIO()
    machine.ask = Asker(
        unattended=False, stdin=io.StringIO(f"/nowhere\n{key}\ncontinue\n"), stdout=out
    )
    run_verify(machine)
    assert machine.backup_key == key
    assert "Path of the key file" in out.getvalue()


def test_unattended_a_spanned_backup_needs_every_medium(
    machine: RecoverContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = Path(machine.config.backup_url.removeprefix("file://")) / "db7"
    medium = spanning.Medium(2, "ABCV002", ("backup.tar.zst.002",))
    spanning.write_media_file(directory, [medium])
    monkeypatch.setattr(
        verify.spanmedia, "missing_media", lambda media, work, **_: (list(media), {"/dev/sr1"})
    )
    machine.options.unattended = True
    machine.ask = Asker(unattended=True)
    with pytest.raises(MissingError, match=r"backup medium 2 of 2 .*nothing was touched"):
        run_verify(machine)
    assert machine.script is None and "/dev/sr1" in machine.protected


def test_a_network_card_guess_is_asked_or_refused_before_any_write(
    machine: RecoverContext, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from rescue_runtime.recover import finalize_network

    monkeypatch.setattr(verify.finalize, "luks_key_problems", lambda layout, text: [])
    monkeypatch.setattr(finalize_network, "MAC_MAPPING_FILE", tmp_path / "mappings/mac")
    machine.config.saved_interfaces = [
        rescueconf.SavedInterface("eth0", "52:54:00:00:00:01", driver="e1000e"),
        rescueconf.SavedInterface("eth1", "52:54:00:00:00:02", driver="igb"),
    ]
    new = [finalize_network.Nic(f"enp{n}s0", f"52:54:00:00:01:0{n}", "virtio_net") for n in (1, 2)]
    monkeypatch.setattr(verify.finalize_network, "present_nics", lambda: new)
    machine.options.unattended = True
    machine.ask = Asker(unattended=True)
    with pytest.raises(MkmediaError, match="network cards cannot all be placed") as refused:
        run_verify(machine)
    assert machine.script is None  # stopped before the recreate script was even written
    assert "52:54:00:00:00:01 52:54:00:00:01:01" in (refused.value.hint or "")

    (tmp_path / "mappings").mkdir()
    (tmp_path / "mappings/mac").write_text("52:54:00:00:00:01 52:54:00:00:01:02\n")
    run_verify(machine)  # the mapping file decides one; the other is the one card left
    assert machine.nics.pairs == {
        "52:54:00:00:00:01": "52:54:00:00:01:02",
        "52:54:00:00:00:02": "52:54:00:00:01:01",
    }


def test_exclude_recreate_leaves_components_out_and_the_restore_skips_them(
    machine: RecoverContext,
) -> None:
    machine.config.settings["EXCLUDE_RECREATE"] = ["/srv"]
    run_verify(machine)
    assert machine.skipped_mounts == ["/srv"]
    assert machine.layout.mount("/srv") is None and machine.layout.mount("/") is not None
    assert machine.plan is not None and "/srv" not in machine.plan.script.split("TARGET")[-1]
    assert any("/srv: not recreated" in line for line in report.section("exclude"))


def test_a_disk_that_fits_nowhere_is_left_out_only_when_the_operator_agrees(
    machine: RecoverContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    *kept, last = machine_layout(machine).disks  # vdc: the LUKS PV and the spare
    disks = [present(d.path, d.size, d.serial) for d in kept]
    monkeypatch.setattr(verify.mapping, "present_disks", lambda: disks)
    machine.options.unattended = True
    machine.ask = Asker(unattended=True)
    with pytest.raises(MkmediaError, match="without a guess"):
        run_verify(machine)
    machine.options.unattended = False
    answers = io.StringIO("yes\ncontinue\n")
    machine.ask = Asker(unattended=False, stdin=answers, stdout=io.StringIO())
    run_verify(machine)
    assert machine.plan is not None and last.path not in machine.plan.disks
    # the VG lost a PV, so it and everything on it is left out; / went with it
    assert "/" in machine.skipped_mounts
    assert any("the operator agreed" in line for line in report.section("exclude"))


def test_a_smaller_disk_is_planned_by_the_used_bytes_and_asked_for(
    machine: RecoverContext, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from tests.unit.test_recover_resize import GiB, bios_lvm

    layout_dir = Path(machine.options.layout_dir)
    store.save(bios_lvm(), layout_dir)
    sha = hashlib.sha256((layout_dir / store.JSON_NAME).read_bytes()).hexdigest()
    backup = Path(machine.config.backup_url.removeprefix("file://")) / "db7"
    document = json.loads((backup / manifests.MANIFEST_NAME).read_text())
    used = {"fs:/dev/mapper/vgsys-root": 1 * GiB, "fs:/dev/vda1": 50 << 20}
    document.update(layout_sha256=sha, used_bytes=used)
    (backup / manifests.MANIFEST_NAME).write_text(json.dumps(document))
    monkeypatch.setattr(verify.mapping, "present_disks", lambda: [present("/dev/vda", 3 * GiB)])
    out = io.StringIO()
    machine.ask = Asker(unattended=False, stdin=io.StringIO("no\n"), stdout=out)
    with pytest.raises(MkmediaError, match="did not accept the resize plan"):
        run_verify(machine)
    assert machine.script is None and "Recreate the layout with these sizes?" in out.getvalue()
    machine.ask = Asker(unattended=False, stdin=io.StringIO("yes\ncontinue\n"), stdout=out)
    run_verify(machine)
    root = machine.layout.lv("vgsys/root")
    assert root is not None and root.size < 2560 << 20
    assert any("LV vgsys/root" in line for line in report.section("resize"))
