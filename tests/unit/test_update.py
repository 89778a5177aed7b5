"""`mkmedia update` in the rescue system: every bad overlay is refused with a clear message and
nothing changed; a good one is applied, recorded and rolled back; the URL templates expand."""

from __future__ import annotations

import gzip
import os
import tarfile
from pathlib import Path

import pytest

from rescue_runtime import cli as rescue_cli
from rescue_runtime import rescueconf
from rescue_runtime.errors import ConfigError
from rescue_runtime.update import command
from rescue_runtime.update.command import update
from rescue_runtime.update.source import expand_template, first_mac, template_values
from tests.overlays import (
    CONF,
    fake_root,
    keypair,
    manifest_for,
    member,
    rescue_json,
    sign,
    snapshot,
    trust,
    write_archive,
)

NEW_CONF = {CONF: rescue_json("db7", BACKUP_URL="file:///srv/db7")}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return fake_root(tmp_path / "root")


def refused(root: Path, archive: Path, capsys: pytest.CaptureFixture[str], **kw: object) -> str:
    """Run `mkmedia update ARCHIVE --root ROOT`: it must fail and leave root as it was."""
    before = snapshot(root)
    argv = ["update", str(archive), "--root", str(root)]
    assert rescue_cli.main(argv) != 0
    assert snapshot(root) == before, "a refused overlay changed the system"
    err = capsys.readouterr().err
    assert "Nothing was changed" in err or "nothing was changed" in err, err
    return err


def test_good_overlay_is_applied_recorded_and_rolled_back(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(root)
    files = {**NEW_CONF, "var/lib/mkmedia/layout/extra.txt": b"new\n"}
    archive = write_archive(tmp_path / "good.tar.gz", files)
    assert rescue_cli.main(["update", str(archive), "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "1 replaced, 1 added" in out and "/etc/mkmedia/rescue.json (configuration)" in out
    assert "read again: host db7" in out
    config = rescueconf.load(root / CONF)
    assert config.hostname == "db7" and config.settings["BACKUP_URL"] == "file:///srv/db7"
    # the same overlay again changes nothing and records nothing
    assert update(str(archive), root=root).changes == []
    assert rescue_cli.main(["update", "--rollback", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "restored /etc/mkmedia/rescue.json" in " ".join(out.split())
    assert "removed /var/lib/mkmedia/layout/extra.txt" in " ".join(out.split())
    after = {k: v for k, v in snapshot(root).items() if not k.startswith("var/lib/mkmedia/update")}
    assert after == before
    assert rescue_cli.main(["update", "--status", "--root", str(root)]) == 0
    assert "rolled back" in capsys.readouterr().out
    assert rescue_cli.main(["update", "--rollback", "--root", str(root)]) == 1
    assert "no applied update to roll back" in capsys.readouterr().err


def test_two_updates_roll_back_one_at_a_time(root: Path, tmp_path: Path) -> None:
    first = write_archive(tmp_path / "1.tar.gz", {CONF: rescue_json("one")})
    second = write_archive(tmp_path / "2.tar.gz", {CONF: rescue_json("two")})
    update(str(first), root=root)
    update(str(second), root=root)
    assert rescueconf.load(root / CONF).hostname == "two"
    command.rollback(root)
    assert rescueconf.load(root / CONF).hostname == "one"
    command.rollback(root)
    assert rescueconf.load(root / CONF).hostname == "golden"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("etc/mkmedia/../../etc/passwd", "'..' component (path traversal)"),
        ("/etc/mkmedia/rescue.json", "has an absolute path"),
        ("etc/passwd", "outside the places an overlay may change"),
        ("etc/mkmedia/update/allowed_signers", "outside the places an overlay may change"),
        ("var/lib/mkmedia/update/history/0001/record.json", "outside the places"),
    ],
)
def test_bad_paths_are_refused(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, message: str
) -> None:
    archive = write_archive(tmp_path / "bad.tar.gz", NEW_CONF, extra=[member(name, b"x")])
    assert message in refused(root, archive, capsys)


@pytest.mark.parametrize("target", ["/etc/shadow", "../../../root/.ssh", "../../passwd"])
def test_symlink_escape_is_refused(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], target: str
) -> None:
    link = member("etc/mkmedia/escape", kind=tarfile.SYMTYPE, linkname=target)
    archive = write_archive(tmp_path / "link.tar.gz", NEW_CONF, extra=[link])
    assert "points outside the overlay's allowed places" in refused(root, archive, capsys)


def test_writing_through_the_overlays_own_link_is_refused(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    link = member("etc/mkmedia/lib", kind=tarfile.SYMTYPE, linkname="../../var/lib/mkmedia")
    files = {**NEW_CONF, "etc/mkmedia/lib/update/history/0001/record.json": b"{}"}
    manifest = manifest_for(files, {"etc/mkmedia/lib": "../../var/lib/mkmedia"})
    archive = write_archive(tmp_path / "t.tar.gz", files, extra=[link], manifest=manifest)
    assert "would be written through its link etc/mkmedia/lib" in refused(root, archive, capsys)


def test_link_inside_is_kept(root: Path, tmp_path: Path) -> None:
    link = member("etc/mkmedia/current.json", kind=tarfile.SYMTYPE, linkname="rescue.json")
    files = {**NEW_CONF}
    manifest = manifest_for(files, {"etc/mkmedia/current.json": "rescue.json"})
    archive = write_archive(tmp_path / "l.tar.gz", files, extra=[link], manifest=manifest)
    update(str(archive), root=root)
    assert (root / "etc/mkmedia/current.json").resolve() == (root / CONF).resolve()


def test_writing_through_a_link_of_the_system_is_refused(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "elsewhere").mkdir()
    (root / "var/lib/mkmedia/layout").rename(root / "var/lib/mkmedia/old")
    (root / "var/lib/mkmedia/layout").symlink_to(tmp_path / "elsewhere")
    files = {"var/lib/mkmedia/layout/layout.json": b"{}"}
    archive = write_archive(tmp_path / "through.tar.gz", files)
    assert "written through the symbolic link" in refused(root, archive, capsys)
    assert not any((tmp_path / "elsewhere").iterdir())


@pytest.mark.parametrize("kind", [tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE])
def test_device_files_are_refused(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: bytes
) -> None:
    device = member("etc/mkmedia/sda", kind=kind, devmajor=8, devminor=0)
    archive = write_archive(tmp_path / "dev.tar.gz", NEW_CONF, extra=[device])
    assert "is a device file or FIFO" in refused(root, archive, capsys)


def test_hard_links_are_refused(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hard = member("etc/mkmedia/hard", kind=tarfile.LNKTYPE, linkname="etc/shadow")
    archive = write_archive(tmp_path / "hard.tar.gz", NEW_CONF, extra=[hard])
    assert "is a hard link" in refused(root, archive, capsys)


def test_oversize_archive_and_contents_are_refused(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    big = {**NEW_CONF, "var/lib/mkmedia/big": bytes(3 * 1024 * 1024)}
    archive = write_archive(tmp_path / "big.tar.gz", big)  # zeros: compresses to a few KiB
    (root / CONF).write_bytes(rescue_json("golden", UPDATE_MAX_MIB=2))
    err = refused(root, archive, capsys)
    assert "unpack to more than the limit of 2097152 bytes" in err
    random = {**NEW_CONF, "var/lib/mkmedia/big": os.urandom(2200000)}
    archive = write_archive(tmp_path / "random.tar.gz", random)
    assert "over the limit of 2097152" in refused(root, archive, capsys)


def test_truncated_archive_is_refused(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = {**NEW_CONF, "var/lib/mkmedia/data": os.urandom(200000)}
    archive = write_archive(tmp_path / "whole.tar.gz", files)
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    assert "not a complete tar archive" in refused(root, cut, capsys)
    # an uncompressed tar cut inside a member's data: the member is short
    plain = tmp_path / "plain.tar"
    plain.write_bytes(gzip.decompress(archive.read_bytes())[:150000])
    assert "truncated" in refused(root, plain, capsys)


def test_not_an_overlay_and_unlisted_files_are_refused(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bare = tmp_path / "bare.tar.gz"
    with tarfile.open(bare, "w:gz"):
        pass
    assert "it has no MKMEDIA-UPDATE.json" in refused(root, bare, capsys)
    extra = member("etc/mkmedia/sneaked", b"x")
    archive = write_archive(tmp_path / "extra.tar.gz", NEW_CONF, extra=[extra])
    assert "is not in its manifest" in refused(root, archive, capsys)
    bad = write_archive(tmp_path / "badconf.tar.gz", {CONF: b"{not json"})
    assert "cannot be used" in refused(root, bad, capsys)


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    work = tmp_path / "keys"
    work.mkdir()
    return {name: keypair(work, name) for name in ("admin", "stranger")}


def test_signed_overlay_is_applied_when_signers_are_configured(
    root: Path, tmp_path: Path, keys: dict[str, tuple[Path, str]]
) -> None:
    trust(root, "admin@example.com", keys["admin"][1])
    manifest = manifest_for(NEW_CONF)
    signature = sign(manifest, keys["admin"][0], tmp_path)
    archive = write_archive(tmp_path / "s.tar.gz", NEW_CONF, signature=signature)
    record = update(str(archive), root=root)
    assert record.signer == "admin@example.com" and rescueconf.load(root / CONF).hostname == "db7"


def test_unsigned_overlay_is_refused_when_signing_is_required(
    root: Path,
    tmp_path: Path,
    keys: dict[str, tuple[Path, str]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    trust(root, "admin@example.com", keys["admin"][1])
    archive = write_archive(tmp_path / "unsigned.tar.gz", NEW_CONF)
    assert "it is not signed, and this rescue system accepts only signed" in refused(
        root, archive, capsys
    )


def test_overlay_signed_by_an_unknown_key_is_refused(
    root: Path,
    tmp_path: Path,
    keys: dict[str, tuple[Path, str]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    trust(root, "admin@example.com", keys["admin"][1])
    signature = sign(manifest_for(NEW_CONF), keys["stranger"][0], tmp_path)
    archive = write_archive(tmp_path / "stranger.tar.gz", NEW_CONF, signature=signature)
    assert "signed by a key that is not in" in refused(root, archive, capsys)


def test_overlay_tampered_after_signing_is_refused(
    root: Path,
    tmp_path: Path,
    keys: dict[str, tuple[Path, str]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    trust(root, "admin@example.com", keys["admin"][1])
    manifest = manifest_for(NEW_CONF)
    signature = sign(manifest, keys["admin"][0], tmp_path)
    # a file changed after signing: its sha256 no longer matches the signed manifest
    evil = {CONF: rescue_json("db7", BACKUP_URL="file:///srv/evil")}
    archive = write_archive(tmp_path / "file.tar.gz", NEW_CONF, signature=signature, contents=evil)
    assert "changed after the manifest was written" in refused(root, archive, capsys)
    # the manifest changed to match: its signature no longer matches it
    archive = write_archive(tmp_path / "manifest.tar.gz", evil, signature=signature)
    assert "its signature by admin@example.com does not match its manifest" in refused(
        root, archive, capsys
    )


def test_failed_download_changes_nothing(
    root: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    err = refused(root, tmp_path / "missing.tar.gz", capsys)
    assert "is not a file" in err
    before = snapshot(root)
    assert rescue_cli.main(["update", "nfs://server/x.tar", "--root", str(root)]) != 0
    assert "nfs:// is not available in this rescue system" in capsys.readouterr().err
    assert rescue_cli.main(["update", "http://127.0.0.1:9/x.tar", "--root", str(root)]) != 0
    assert "Cannot fetch the overlay http://127.0.0.1:9/x.tar" in capsys.readouterr().err
    assert snapshot(root) == before


def fake_sys(base: Path) -> Path:
    links = {"lo": ("1", "00:00:00:00:00:00"), "eth0": ("0", "52:54:00:aa:aa:aa")}
    links["ens3"] = ("1", "52:54:00:12:34:56")
    for name, (carrier, address) in links.items():
        (base / "class/net" / name).mkdir(parents=True)
        (base / "class/net" / name / "carrier").write_text(carrier + "\n")
        (base / "class/net" / name / "address").write_text(address.upper() + "\n")
    (base / "class/dmi/id").mkdir(parents=True)
    (base / "class/dmi/id/product_serial").write_text("SN-4711\n")
    return base


def test_templates_expand_to_this_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sys_dir = fake_sys(tmp_path / "sys")
    monkeypatch.setattr("socket.gethostname", lambda: "db7")
    values = template_values(sys_dir)
    url = "http://10.0.2.2/${HOSTNAME}/${MAC}-${SERIAL}.tar.gz"
    assert expand_template(url, values) == "http://10.0.2.2/db7/52:54:00:12:34:56-SN-4711.tar.gz"
    assert expand_template("file:///srv/plain.tar", values) == "file:///srv/plain.tar"
    with pytest.raises(ConfigError, match=r"uses \$\{IP\}, which is not a template variable"):
        expand_template("http://x/${IP}", values)
    config = rescueconf.RescueConfig(settings={"RECOVERY_UPDATE_URL": "http://h/${HOSTNAME}"})
    assert command.configured_url(config, sys_dir) == "http://h/db7"
    assert command.configured_url(rescueconf.RescueConfig(), sys_dir) is None


def test_mac_and_serial_say_when_missing(tmp_path: Path) -> None:
    sys_dir = tmp_path / "sys"
    (sys_dir / "class/net/eth0").mkdir(parents=True)
    (sys_dir / "class/net/eth0/carrier").write_text("0\n")
    (sys_dir / "class/net/eth0/address").write_text("52:54:00:aa:aa:aa\n")
    with pytest.raises(ConfigError, match=r"no network link in .* has carrier"):
        first_mac(sys_dir)
    with pytest.raises(ConfigError, match="SERIAL"):
        expand_template("${SERIAL}", template_values(sys_dir))


def test_configured_update_applies_once_and_reexecs_for_runtime(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = write_archive(tmp_path / "o.tar.gz", NEW_CONF)
    config = rescueconf.RescueConfig(settings={"RECOVERY_UPDATE_URL": f"file://{archive}"})
    monkeypatch.delenv(command.REEXEC_MARK, raising=False)
    summary = command.apply_configured_update(config, root=root)
    assert summary is not None and "1 replaced" in summary
    assert command.apply_configured_update(rescueconf.RescueConfig(), root=root) is None
    runtime = {"var/lib/mkmedia/runtime/rescue_runtime/__init__.py": b"# new\n"}
    archive = write_archive(tmp_path / "r.tar.gz", runtime)
    config.settings["RECOVERY_UPDATE_URL"] = str(archive)
    calls: list[list[str]] = []
    monkeypatch.setattr(command, "reexec", lambda arguments: calls.append(list(arguments)))
    command.apply_configured_update(config, root=root)
    assert len(calls) == 1, "runtime code changed: the command must run again"
    monkeypatch.setenv(command.REEXEC_MARK, "1")
    assert command.apply_configured_update(config, root=root) is None


def test_a_swap_failing_halfway_puts_everything_back(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import contextlib

    from rescue_runtime import atomic
    from rescue_runtime.update import apply

    real = atomic.atomic_path

    @contextlib.contextmanager
    def failing(dest: Path, **kw: object):  # type: ignore[no-untyped-def]
        with real(dest, **kw) as tmp:  # type: ignore[arg-type]
            yield tmp
            if Path(dest).name == "layout.json":  # after new.txt, before rescue.json (stack order)
                raise OSError(28, "No space left on device")

    monkeypatch.setattr(apply.atomic, "atomic_path", failing)
    files = {
        **NEW_CONF,
        "var/lib/mkmedia/layout/layout.json": b'{"disks": ["new"]}\n',
        "var/lib/mkmedia/layout/new.txt": b"added\n",
    }
    archive = write_archive(tmp_path / "o.tar.gz", files)
    err = refused(root, archive, capsys)
    assert "No space left on device" in err and "was put back" in err
