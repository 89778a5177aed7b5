"""The OUTPUT and BACKUP registries decide what is accepted and offered; nothing claims a
result it did not produce (media, backup, menu entries for a recover that does not exist)."""

from __future__ import annotations

import dataclasses
import inspect
import json
from pathlib import Path
from typing import Any

import pytest

from mkmedia import cli, emit
from mkmedia import workflow as wf
from mkmedia.config import load_config
from mkmedia.emit import Artifact, Emitter, MediaSpec, bootmenu, iso, pxe, rawdisk
from mkmedia.host.sysinfo import SystemInfo
from mkmedia.settings import BY_NAME
from rescue_runtime import backup, features
from rescue_runtime.backup.base import BackupMethod
from rescue_runtime.errors import EXIT_CONFIG, ConfigError, MissingError
from tests.unit.test_cli import mkmedia


class FakeUsbEmitter(Emitter):
    """A stand-in for an emitter a later version registers (the test registers this module)."""

    name = "USB"

    def check(self) -> None:
        raise MissingError("OUTPUT=USB but no USB stick is plugged in.")

    def write(self, *, kernel: Path, initrd: Path, work_dir: Path) -> list[Artifact]:
        raise AssertionError("never written in these tests")


class FakeFileBackup(BackupMethod):
    """A stand-in for a backup method that writes to file:// URLs."""

    name = "NETFS"
    url_schemes = ("file",)


EMITTER = FakeUsbEmitter
METHOD = FakeFileBackup

# The OUTPUT kinds a recipe may name that have no emitter yet: each must be refused.
UNIMPLEMENTED = [k for k in BY_NAME["OUTPUT"].choices if k not in emit.output_names()]


def run_args(tmp_path: Path, config_dir: Path) -> list[str]:
    """Options that keep a real run inside the test's directory."""
    return [
        "-c",
        str(config_dir),
        "--log-file",
        str(tmp_path / "mkmedia.log"),
        "--set",
        f"OUTPUT_URL=file://{tmp_path / 'out'}",
        "--set",
        f"TMPDIR={tmp_path / 'work'}",
        "--set",
        f"LAYOUT_DIR={tmp_path / 'layout'}",
    ]


def assert_nothing_built(tmp_path: Path) -> None:
    assert not (tmp_path / "out").exists(), "nothing is written under OUTPUT_URL"
    assert not (tmp_path / "layout").exists(), "no layout was saved"
    assert not list((tmp_path / "work").glob("mkmedia.*")), "no build directory was made"


def test_output_without_emitter_is_refused_before_building(
    tmp_path: Path, config_dir: Path
) -> None:
    """Every OUTPUT kind known for later versions is refused; once all are built, the
    choices are exactly the registered emitters (so a new unbuilt name gets refused here)."""
    if not UNIMPLEMENTED:
        assert set(BY_NAME["OUTPUT"].choices) == set(emit.output_names())
    for kind in UNIMPLEMENTED:
        result = mkmedia(
            "build", *run_args(tmp_path, config_dir), "--set", f"OUTPUT={kind}", tmp=tmp_path
        )
        assert result.returncode == EXIT_CONFIG, result.stderr
        assert f"OUTPUT={kind} (from --set OUTPUT) has no emitter" in result.stderr
        assert f"offers OUTPUT: {', '.join(emit.output_names())}." in result.stderr
        assert "Traceback" not in result.stderr
        assert_nothing_built(tmp_path)


def test_emitter_check_runs_in_prep_before_anything_is_built(
    data_dir: Path,
    config_dir: Path,
    fake_system: SystemInfo,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(emit._EMITTERS, "USB", __name__)
    wf.load_steps()
    config = load_config(
        config_dir=config_dir,
        system=fake_system,
        sets=[
            "OUTPUT=USB",
            f"OUTPUT_URL=file://{tmp_path / 'out'}",
            f"LAYOUT_DIR={tmp_path / 'layout'}",
        ],
    )
    build_dir = tmp_path / "work" / "mkmedia.test"
    build_dir.mkdir(parents=True)
    with pytest.raises(MissingError, match="no USB stick"):
        wf.run_workflow(
            wf.WORKFLOWS["build"], config, hooks_dir=config_dir / "hooks.d", build_dir=build_dir
        )
    assert_nothing_built(tmp_path)


def media_spec(directory: Path, **changes: Any) -> MediaSpec:
    """Media for host h in `directory`, with `changes` over the plainest values."""
    plain = MediaSpec(
        directory=directory,
        prefix="h",
        host="h",
        kernel_cmdline="",
        consoles=("tty0",),
        boot_default="local",
        boot_timeout=1,
    )
    return dataclasses.replace(plain, **changes)


def test_cdrom_check_names_a_missing_drive(tmp_path: Path) -> None:
    spec = media_spec(tmp_path, device=str(tmp_path / "sr9"))
    with pytest.raises(MissingError, match=r"sr9 \(CDROM_DEVICE\) does not exist"):
        emit.emitter_class("CDROM")(spec).check()


def test_every_implemented_output_has_its_emitter_class() -> None:
    assert set(emit.output_names()) == {
        "ISO", "CDROM", "RAMDISK", "USB", "PXE", "RAWDISK", "OBDR"
    }  # fmt: skip
    for name in emit.output_names():
        emitter = emit.emitter_class(name)
        assert issubclass(emitter, Emitter) and emitter.name == name


def test_iso_emitter_hands_write_iso_every_media_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """IsoEmitter passes the MediaSpec fields by name (iso.SPEC_ARGUMENTS): each must be a
    write_iso() parameter, every write_iso() media parameter must be among them, and the
    values arrive unchanged."""
    own = {"output", "kernel", "initrd", "work_dir", "serial_variants", "marker_id"}
    assert set(inspect.signature(iso.write_iso).parameters) - own == set(iso.SPEC_ARGUMENTS)
    backup = {"backup": tmp_path / "backup"}
    spec = media_spec(
        tmp_path, volume_label="LABEL", secure_boot=True, source_date_epoch=7, payload_dirs=backup
    )
    calls: list[tuple[Path, dict[str, object]]] = []
    monkeypatch.setattr(iso, "write_iso", lambda output, **kw: calls.append((output, kw)) or [])
    iso.IsoEmitter(spec).write(kernel=Path("k"), initrd=Path("i"), work_dir=tmp_path)
    ((output, kw),) = calls
    assert output == tmp_path / "h.iso"
    assert kw == {
        "kernel": Path("k"),
        "initrd": Path("i"),
        "work_dir": tmp_path,
        "marker_id": spec.medium_id,  # the medium id the rescue system knows
        **{name: getattr(spec, name) for name in iso.SPEC_ARGUMENTS},
    }
    assert kw["host"] == "h" and kw["secure_boot"] is True and kw["payload_dirs"] == backup


@pytest.mark.parametrize(
    ("module", "write", "positional"), [(pxe, "write_pxe", 1), (rawdisk, "write_rawdisk", 2)]
)
def test_pxe_and_rawdisk_emitters_hand_over_every_media_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, module: Any, write: str, positional: int
) -> None:
    """Emitter.write_arguments() gives every keyword parameter of write_pxe()/write_rawdisk()
    a value, the spec's unchanged."""
    params = list(inspect.signature(getattr(module, write)).parameters)
    spec = media_spec(tmp_path, secure_boot=True, source_date_epoch=7, pxe_clients=("a",))
    calls: list[dict[str, object]] = []
    monkeypatch.setattr(module, write, lambda *args, **kw: calls.append(kw) or [])
    module.EMITTER(spec).write(kernel=Path("k"), initrd=Path("i"), work_dir=tmp_path)
    (kw,) = calls
    assert set(kw) == set(params[positional:])
    assert kw["kernel"] == Path("k") and kw["work_dir"] == tmp_path
    assert kw["source_date_epoch"] == 7 and kw["secure_boot"] is True and kw["host"] == "h"


def test_output_is_accepted_only_when_a_class_is_registered(
    data_dir: Path, config_dir: Path, fake_system: SystemInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert load_config(config_dir=config_dir, system=fake_system, sets=["OUTPUT=RAMDISK"])
    monkeypatch.delitem(emit._EMITTERS, "RAMDISK")
    with pytest.raises(ConfigError) as err:
        load_config(config_dir=config_dir, system=fake_system, sets=["OUTPUT=RAMDISK"])
    assert "OUTPUT=RAMDISK (from --set OUTPUT) has no emitter" in str(err.value)
    assert "offers OUTPUT: ISO, CDROM, USB, PXE, RAWDISK, OBDR." in str(err.value)
    with pytest.raises(ConfigError, match="OUTPUT=RAMDISK has no emitter"):
        emit.emitter_class("RAMDISK")

    # registering a class is all a new kind needs
    monkeypatch.setitem(emit._EMITTERS, "USB", __name__)
    config = load_config(config_dir=config_dir, system=fake_system, sets=["OUTPUT=USB"])
    assert config.get_str("OUTPUT") == "USB"
    assert emit.emitter_class("USB") is FakeUsbEmitter


def settings_rows(capsys: pytest.CaptureFixture[str]) -> dict[str, dict[str, object]]:
    capsys.readouterr()
    assert cli.main(["settings", "--json"]) == 0
    return {row["name"]: row for row in json.loads(capsys.readouterr().out)}


def test_settings_lists_choices_from_the_registries(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = settings_rows(capsys)
    assert rows["OUTPUT"]["choices"] == list(emit.output_names())
    assert rows["BACKUP"]["choices"] == list(backup.method_names())
    assert rows["BOOT_DEFAULT"]["choices"] == ["rescue", "unattended", "local"]
    assert "STATE_DIR" not in rows, "a setting nothing uses is not offered"

    monkeypatch.delitem(emit._EMITTERS, "CDROM")
    monkeypatch.delitem(emit._EMITTERS, "USB")  # registered again below: last in the table
    monkeypatch.setitem(emit._EMITTERS, "USB", __name__)
    monkeypatch.setitem(backup._METHODS, "NETFS", __name__)
    rows = settings_rows(capsys)
    assert rows["OUTPUT"]["choices"] == list(emit.output_names())
    assert "CDROM" not in emit.output_names() and "USB" in emit.output_names()
    assert "NETFS" in rows["BACKUP"]["choices"]  # type: ignore[operator]
    assert cli.main(["settings"]) == 0
    text = capsys.readouterr().out
    assert f"OUTPUT                 choice ({'|'.join(emit.output_names())})" in text


def test_backup_without_method_is_refused(
    data_dir: Path, config_dir: Path, fake_system: SystemInfo
) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(
            config_dir=config_dir,
            system=fake_system,
            sets=["BACKUP=TAPE", "BACKUP_URL=tape:///dev/nst0"],
        )
    message = str(err.value)
    assert "BACKUP=TAPE (from --set BACKUP) has no backup method" in message
    assert f"offers BACKUP: {', '.join(backup.method_names())}." in message


@pytest.mark.parametrize("method", backup.method_names())
@pytest.mark.parametrize("url", ["garbage", "http://x"])
def test_backup_url_is_checked_by_every_method(
    method: str, url: str, data_dir: Path, config_dir: Path, fake_system: SystemInfo
) -> None:
    with pytest.raises(ConfigError, match=f"BACKUP_URL='{url}'.*BACKUP_URL from --set BACKUP_URL"):
        load_config(
            config_dir=config_dir,
            system=fake_system,
            sets=[f"BACKUP={method}", f"BACKUP_URL={url}"],
        )


def test_backup_url_rules_of_a_method_with_urls(
    data_dir: Path, config_dir: Path, fake_system: SystemInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(backup._METHODS, "NETFS", __name__)

    def load(*sets: str) -> object:
        return load_config(config_dir=config_dir, system=fake_system, sets=["BACKUP=NETFS", *sets])

    with pytest.raises(ConfigError, match=r"BACKUP=NETFS but BACKUP_URL is empty.*file://"):
        load()
    with pytest.raises(ConfigError, match="has no scheme, which BACKUP=NETFS does not take"):
        load("BACKUP_URL=garbage")
    with pytest.raises(ConfigError, match="the scheme 'http', which BACKUP=NETFS does not take"):
        load("BACKUP_URL=http://x")
    assert load("BACKUP_URL=file:///srv/backup")


@pytest.mark.parametrize("workflow", ["mkbackup", "mkbackuponly"])
@pytest.mark.parametrize("simulate", [False, True])
def test_backup_workflow_without_backup_is_refused(
    workflow: str, simulate: bool, tmp_path: Path, config_dir: Path
) -> None:
    extra = ["--simulate"] if simulate else []
    result = mkmedia(workflow, *extra, *run_args(tmp_path, config_dir), tmp=tmp_path)
    assert result.returncode == EXIT_CONFIG, (result.stdout, result.stderr)
    assert f"BACKUP=NONE: {workflow} makes no backup; use build, or set BACKUP" in result.stderr
    assert "Traceback" not in result.stderr
    assert_nothing_built(tmp_path)


def test_backup_stage_without_steps_is_refused(
    data_dir: Path, config_dir: Path, fake_system: SystemInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A method that validates but has no backup step would make mkbackup end in success."""
    monkeypatch.setattr(wf, "_REGISTRY", [])
    monkeypatch.setitem(backup._METHODS, "NETFS", __name__)
    config = load_config(
        config_dir=config_dir,
        system=fake_system,
        sets=["BACKUP=NETFS", "BACKUP_URL=file:///srv/backup"],
    )
    with pytest.raises(ConfigError, match="no backup step for it, so mkbackuponly would make"):
        wf.plan(wf.WORKFLOWS["mkbackuponly"], config)
    assert wf.plan(wf.WORKFLOWS["build"], config)


def test_boot_default_unattended_picks_automatic_recover(
    data_dir: Path, config_dir: Path, fake_system: SystemInfo
) -> None:
    assert features.RECOVER.ready
    config = load_config(
        config_dir=config_dir, system=fake_system, sets=["BOOT_DEFAULT=unattended"]
    )
    assert config.get_str("BOOT_DEFAULT") == "unattended"
    menu = bootmenu.build_menu(host="h", kernel_cmdline="", boot_default="unattended")
    assert menu.default == "unattended"
    assert menu.entry("unattended").label == "Automatic recover h"


def test_an_entry_needing_a_missing_feature_is_refused_and_hidden(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    missing = features.Feature("recover", "", ready=False)
    rows = [
        bootmenu.EntryKind(e.id, e.label, e.kind, e.options, e.serial_variants, missing)
        if e.needs
        else e
        for e in bootmenu.ENTRIES
    ]
    monkeypatch.setattr(bootmenu, "ENTRIES", tuple(rows))
    with pytest.raises(ConfigError, match="needs mkmedia recover"):
        bootmenu.build_menu(host="h", kernel_cmdline="", boot_default="unattended")
    menu = bootmenu.build_menu(host="db7", kernel_cmdline="", consoles=["tty0"])
    labels = [entry.label for entry in menu.entries]
    assert labels[:2] == ["Rescue system for db7", "Boot from the first local disk"]
    assert not [label for label in labels if "ecover" in label], labels


def test_menu_shows_only_what_exists(monkeypatch: pytest.MonkeyPatch) -> None:
    # the entries needing recover are there now that it is real
    menu = bootmenu.build_menu(
        host="db7", kernel_cmdline="", consoles=["tty0"], boot_default="unattended"
    )
    assert "unattended" in menu.entry("unattended").cmdline.split()
    assert "unattended" in menu.entry("unattended-ttyS1").cmdline.split()
