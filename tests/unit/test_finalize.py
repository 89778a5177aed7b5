"""Finalize's decisions: which disks get GRUB, the EFI entries it writes, the crypttab key
that replaces a temporary LUKS key, when the initramfs is rebuilt, what verify refuses."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import pytest

from rescue_runtime import cli
from rescue_runtime.errors import MissingError
from rescue_runtime.layout.model import BootLoader, Disk, Filesystem, Layout, Mount, Partition
from rescue_runtime.layout.parse import efibootmgr
from rescue_runtime.layout.parse.tables import parse_crypttab
from rescue_runtime.layout.store import save
from rescue_runtime.recover import finalize_boot, finalize_luks, finalize_system
from rescue_runtime.recover.finalize import finalize_programs, luks_key_problems
from rescue_runtime.recover.finalize_luks import KeyFile, LuksKeys, crypttab_entry, key_file_of
from rescue_runtime.run import Result

DATA = Path(__file__).resolve().parent.parent / "data" / "layout"
ESP_UUID = "844154f7-b405-db40-91c3-c6b19d78f811"
ESP_TYPE = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
LUKS_UUID = "28e2de0e-5454-4353-a243-ef4e7529c320"  # stack_layout's cryptpv


class FakeRun:
    """Records each command; `answers` maps a word of the command line to a Result maker."""

    def __init__(self, answers: dict[str, Callable[[list[str]], Result]] | None = None) -> None:
        self.calls: list[list[str]] = []
        self.answers = answers or {}

    def __call__(self, argv: list[str], **kwargs: object) -> Result:
        argv = [str(a) for a in argv]
        self.calls.append(argv)
        for word, answer in self.answers.items():
            if word in argv:
                return answer(argv)
        return Result(argv, 0, "", "")

    def commands(self, word: str) -> list[list[str]]:
        return [c for c in self.calls if word in c]


def status(code: int, stdout: str = "") -> Callable[[list[str]], Result]:
    return lambda argv: Result(argv, code, stdout, "")


# -- BIOS -------------------------------------------------------------------------------------
def test_grub_goes_onto_every_disk_that_held_it_in_layout_order(stack_layout: Layout) -> None:
    layout = copy.deepcopy(stack_layout)
    layout.boot.loaders = [
        BootLoader("grub2-bios", "/dev/vdb"),
        BootLoader("grub2-bios", "/dev/vda"),
        BootLoader("grub2-bios", "/dev/sdz"),  # not a disk of the layout (excluded)
        BootLoader("grub2-efi", "/boot/efi"),
    ]
    assert finalize_boot.grub_disks(layout) == ["/dev/vda", "/dev/vdb"]  # the mirrored /boot
    layout.boot.loaders = []
    assert finalize_boot.grub_disks(layout) == []


def target_with(tmp_path: Path, *programs: str) -> Path:
    target = tmp_path / "target"
    for program in programs:
        path = target / program.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("#!/bin/sh\n")
    return target


def test_install_bios_runs_the_restored_grub_install_per_disk(
    stack_layout: Layout, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layout = copy.deepcopy(stack_layout)
    layout.boot.loaders = [
        BootLoader("grub2-bios", "/dev/vda"),
        BootLoader("grub2-bios", "/dev/vdb"),
    ]
    fake = FakeRun()
    monkeypatch.setattr(finalize_boot, "run", fake)
    target = target_with(tmp_path, "/usr/sbin/grub-install")
    notes = finalize_boot.install_bios(layout, target)
    assert fake.calls == [
        ["chroot", str(target), "/usr/sbin/grub-install", "--target=i386-pc", "/dev/vda"],
        ["chroot", str(target), "/usr/sbin/grub-install", "--target=i386-pc", "/dev/vdb"],
    ]
    assert notes[0].startswith("GRUB installed on /dev/vda")

    with pytest.raises(MissingError, match=r"has no grub-install .* /dev/vda, /dev/vdb"):
        finalize_boot.install_bios(layout, target_with(tmp_path / "bare"))
    layout.boot.loaders = []
    (warning,) = finalize_boot.install_bios(layout, target)
    assert warning.startswith("WARNING: the layout records no disk with BIOS boot code")


# -- UEFI -------------------------------------------------------------------------------------
def uefi_layout() -> Layout:
    """A mirrored UEFI machine: ESPs on vda (mounted) and vdb (a copy), as captured."""
    layout = Layout()
    for i, disk in enumerate(("/dev/vda", "/dev/vdb")):
        esp = Partition(
            path=f"{disk}1", number=1, start=1 << 20, size=100 << 20, type=ESP_TYPE,
            uuid=ESP_UUID if i == 0 else "11111111-2222-4333-8444-555555555555",
            flags=["esp"], disk=disk, unmounted=i == 1,
        )  # fmt: skip
        layout.disks.append(Disk(path=disk, size=4 << 30, table="gpt", partitions=[esp]))
    layout.filesystems = [Filesystem(f"/dev/vd{x}1", "vfat") for x in "ab"]
    layout.mounts = [Mount("/boot/efi", "/dev/vda1", "vfat")]
    boot = efibootmgr.parse((DATA / "efibootmgr" / "written-18.txt").read_text())
    layout.boot.firmware = "uefi"
    layout.boot.efi_entries, layout.boot.boot_order = boot.entries, boot.order
    return layout


def test_the_efi_entry_is_written_from_the_captured_one() -> None:
    layout = uefi_layout()
    ((entry, esp),) = finalize_boot.entries_to_write(layout)  # UiApp and PXE are not on an ESP
    assert (entry.label, esp.path) == ("debian", "/dev/vda1")
    assert finalize_boot.efibootmgr_create_args(entry, "/dev/vda", 1) == [
        "efibootmgr", "--create", "--disk", "/dev/vda", "--part", "1",
        "--label", "debian", "--loader", "\\EFI\\debian\\shimx64.efi",
    ]  # fmt: skip
    assert finalize_programs(layout)[-1] == "efibootmgr"
    assert finalize_boot.mirror_esps(layout, esp) == [layout.disks[1].partitions[0]]
    layout.disks[1].partitions[0].unmounted = False  # `layout save --all` marks nothing
    assert finalize_boot.mirror_esps(layout, esp) == [layout.disks[1].partitions[0]]
    layout.mounts.append(Mount("/boot/efi2", "/dev/vdb1", "vfat"))  # its own ESP, mounted
    assert finalize_boot.mirror_esps(layout, esp) == []


def test_write_efi_entries_creates_it_and_puts_it_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = "BootCurrent: 0000\nBootOrder: 0000,0002\nBoot0000* UiApp\tFvVol(x)\n"
    after = (
        before.replace("0000,0002", "0003,0000,0002")
        + f"Boot0003* debian\tHD(1,GPT,{ESP_UUID.upper()},0x800,0x32000)"
        "/File(\\EFI\\DEBIAN\\shimx64.efi)\n"
    )
    listings = iter([before, after])
    fake = FakeRun(
        {"-v": lambda argv: Result(argv, 0, next(listings), ""), "--bootorder": status(0)}
    )
    efivars = tmp_path / "efivars"
    efivars.mkdir()
    (efivars / "BootOrder-8be4df61").write_bytes(b"")
    monkeypatch.setattr(finalize_boot, "EFIVARS", str(efivars))
    monkeypatch.setattr(finalize_boot, "run", fake)
    monkeypatch.setattr(finalize_boot, "live_partition", lambda uuid, saved: ("/dev/vda", 1))
    notes = finalize_boot.write_efi_entries(uefi_layout())
    assert fake.commands("--create") == [
        finalize_boot.efibootmgr_create_args(uefi_layout().boot.efi_entries[1], "/dev/vda", 1)
    ]
    # efibootmgr put it first already: BootOrder is left alone
    assert fake.commands("--bootorder") == []
    assert notes == ["EFI boot entry Boot0003 'debian' written"]

    # the entry is there already (same ESP, same loader in other case): only BootOrder moves
    fake = FakeRun({"-v": status(0, after.replace("0003,0000,0002", "0000,0003"))})
    monkeypatch.setattr(finalize_boot, "run", fake)
    notes = finalize_boot.write_efi_entries(uefi_layout())
    assert fake.commands("--create") == []
    assert fake.commands("--bootorder") == [["efibootmgr", "--bootorder", "0003,0000"]]


def test_no_efi_variables_no_entry_but_a_loud_note(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(finalize_boot, "EFIVARS", str(tmp_path / "absent"))
    (note,) = finalize_boot.write_efi_entries(uefi_layout())
    assert note.startswith("WARNING: the rescue system did not boot through UEFI")


def test_mirrored_esp_gets_the_mounted_ones_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = target_with(
        tmp_path, "/boot/efi/EFI/BOOT/BOOTX64.EFI", "/boot/efi/EFI/debian/grub.cfg"
    )
    second = tmp_path / "second"
    second.mkdir()

    def mounted(device: str, fstype: str):  # type: ignore[no-untyped-def]
        import contextlib

        assert (device, fstype) == ("/dev/vdb1", "vfat")
        return contextlib.nullcontext(second)

    monkeypatch.setattr(finalize_boot, "mounted", mounted)
    notes = finalize_boot.fill_mirror_esps(uefi_layout(), target)
    assert notes == ["ESP /dev/vdb1 filled with the 2 files of /dev/vda1"]
    assert (second / "EFI/debian/grub.cfg").read_text() == "#!/bin/sh\n"
    mount = uefi_layout().mounts[0]
    assert finalize_boot.fallback_note(target, mount).startswith("removable fallback path kept")


def test_grub_mkconfig_only_when_a_uuid_changed(
    stack_layout: Layout, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeRun()
    monkeypatch.setattr(finalize_boot, "run", fake)
    target = target_with(tmp_path, "/usr/sbin/grub-mkconfig")
    (note,) = finalize_boot.update_grub_config(stack_layout, target, [])
    assert "not run: every UUID is the one the restored grub.cfg names" in note
    assert fake.calls == []
    finalize_boot.update_grub_config(stack_layout, target, ["the UUID of /boot changed"])
    assert fake.calls == [
        ["chroot", str(target), "/usr/sbin/grub-mkconfig", "-o", "/boot/grub/grub.cfg"]
    ]


# -- LUKS -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("line", "key"),
    [
        (
            f"cryptpv UUID={LUKS_UUID.upper()} /etc/keys/pv.key luks,discard",
            KeyFile("/etc/keys/pv.key"),
        ),
        ("other /dev/vdc1 /k luks,keyfile-offset=16,keyfile-size=64", KeyFile("/k", 16, 64)),
        (f"other /dev/disk/by-uuid/{LUKS_UUID} /k luks", KeyFile("/k")),
        ("cryptpv /dev/vdc1 none luks", None),
        ("cryptpv /dev/vdc1 - luks", None),
        ("cryptpv /dev/vdc1 /dev/urandom swap", None),
        ("cryptpv /dev/vdc1 pv keyscript=/lib/cryptsetup/scripts/passdev", None),
        ("cryptpv /dev/vdc1 /k.key:UUID=1234 luks", None),
        ("unrelated /dev/sdq1 /k luks", None),
    ],
)
def test_crypttab_key_file(stack_layout: Layout, line: str, key: KeyFile | None) -> None:
    (luks,) = stack_layout.luks
    entry = crypttab_entry(luks, parse_crypttab(f"# comment\n{line}\n"))
    found, why = key_file_of(entry)
    assert found == key
    assert bool(why) == (key is None)
    if key == KeyFile("/k", 16, 64):
        assert key.options(new=True) == ["--new-keyfile-offset", "16", "--new-keyfile-size", "64"]


def test_luks_key_problems(stack_layout: Layout) -> None:
    layout = copy.deepcopy(stack_layout)
    assert luks_key_problems(layout, f"x UUID={LUKS_UUID} /etc/keys/pv.key luks\n") == []
    # without the backup's crypttab, the one the layout captured stands in
    (problem,) = luks_key_problems(layout, None)
    assert "cryptpv" in problem and "names no key file" in problem
    layout.luks[0].options = []
    (problem,) = luks_key_problems(layout, None)
    assert "the crypttab the layout captured has no line for it" in problem
    layout.luks[0].key_file = "/etc/keys/pv.key"
    assert luks_key_problems(layout, None) == []
    layout.luks[0].key_file = None
    (problem,) = luks_key_problems(layout, "cryptpv /dev/vdc1 none luks\n")
    assert "names no key file" in problem and "interactively" in problem
    layout.luks[0].header_backup = "luks-header-cryptpv.img"
    assert luks_key_problems(layout, None) == []


def luks_setup(
    stack_layout: Layout, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, crypttab: str
) -> tuple[LuksKeys, Path, FakeRun]:
    target = target_with(tmp_path, "/etc/keys/pv.key")
    (target / "etc/crypttab").write_text(crypttab)
    keys = tmp_path / "keys"
    keys.mkdir()
    temporary = keys / "cryptpv.key"
    temporary.write_bytes(b"t" * 64)
    fake = FakeRun({"--test-passphrase": status(2)})
    monkeypatch.setattr(finalize_luks, "run", fake)
    monkeypatch.setattr(finalize_luks, "find_by_uuid", lambda uuid, saved: "/dev/vdc1")
    return LuksKeys(stack_layout, target, keys, None), temporary, fake


def test_crypttab_key_replaces_the_temporary_one(
    stack_layout: Layout, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    crypttab = f"cryptpv UUID={LUKS_UUID} /etc/keys/pv.key luks\n"
    keys, temporary, fake = luks_setup(stack_layout, tmp_path, monkeypatch, crypttab)
    (note,) = keys.run()
    (add,) = fake.commands("luksAddKey")
    assert add[:5] == ["cryptsetup", "luksAddKey", "--batch-mode", "--key-file", str(temporary)]
    assert add[-2:] == ["/dev/vdc1", str(keys.target / "etc/keys/pv.key")]
    assert fake.commands("luksRemoveKey") == [
        ["cryptsetup", "luksRemoveKey", "--batch-mode", "/dev/vdc1", str(temporary)]
    ]
    assert not temporary.exists()
    assert "opens with the key file /etc/keys/pv.key" in note and "temporary key removed" in note


def test_without_a_key_file_the_temporary_key_stays_and_says_so(
    stack_layout: Layout, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys, temporary, fake = luks_setup(
        stack_layout, tmp_path, monkeypatch, "cryptpv /dev/vdc1 none\n"
    )
    notes = keys.run()
    assert fake.commands("luksAddKey") == [] and fake.commands("luksRemoveKey") == []
    assert temporary.exists()
    assert notes[-1].startswith("WARNING: the LUKS volume cryptpv") and "ONLY" in notes[-1]

    # interactive: offered (yes by default: nothing else opens it), the new passphrase
    # (typed twice, never through `ask`, which logs) becomes a key, then the temporary goes
    questions: list[tuple[str, str]] = []
    keys.ask = lambda question, default: questions.append((question, default)) or default
    secrets = iter(["s3cret", "s3cret"])
    keys.read_secret = lambda prompt: next(secrets)
    notes = keys.run()
    assert questions == [("Give the LUKS volume cryptpv a new passphrase? (yes/no)", "yes")]
    (add,) = fake.commands("luksAddKey")
    assert add[-1].endswith(".cryptpv.new") and not Path(add[-1]).exists()
    assert fake.commands("luksRemoveKey") and not temporary.exists()
    assert "opens with the new passphrase" in notes[-1]


# -- the initramfs and the rest ----------------------------------------------------------------
def test_initramfs_is_rebuilt_only_when_something_it_embeds_changed(
    stack_layout: Layout, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = target_with(tmp_path, "/usr/sbin/update-initramfs")
    (md,) = stack_layout.mds
    (target / "etc/mdadm").mkdir(parents=True)
    conf = target / "etc/mdadm/mdadm.conf"
    conf.write_text(f"ARRAY {md.path} metadata=1.2 UUID={md.uuid}\n")
    (target / "etc/crypttab").write_text(f"cryptpv UUID={LUKS_UUID.upper()} none luks\n")
    fake = FakeRun()
    monkeypatch.setattr(finalize_system, "run", fake)
    assert finalize_system.initramfs_reasons(stack_layout, target, []) == []
    (note,) = finalize_system.rebuild_initramfs(stack_layout, target, [])
    assert note.startswith("initramfs not rebuilt") and fake.calls == []

    reasons = ["the UUID of / changed"]
    assert finalize_system.initramfs_reasons(stack_layout, target, reasons) == reasons
    conf.write_text(f"ARRAY {md.path} UUID=00000000:00000000:00000000:00000000\n")
    (why,) = finalize_system.initramfs_reasons(stack_layout, target, [])
    assert why.startswith(f"/etc/mdadm/mdadm.conf names {md.path} by UUID 00000000")
    finalize_system.rebuild_initramfs(stack_layout, target, [])
    assert fake.calls == [["chroot", str(target), "update-initramfs", "-u", "-k", "all"]]


def test_selinux_relabel_and_logs(tmp_path: Path) -> None:
    target = target_with(tmp_path, "/etc/selinux/config")
    (target / "etc/selinux/config").write_text("# x\nSELINUX=disabled\n")
    assert finalize_system.request_relabel(target) == []
    (target / "etc/selinux/config").write_text("SELINUXTYPE=targeted\nSELINUX=enforcing\n")
    assert finalize_system.request_relabel(target) and (target / ".autorelabel").exists()
    log = tmp_path / "recover.log"
    log.write_text("done\n")
    notes = finalize_system.copy_logs([log, tmp_path / "absent.log"], target)
    copied = target / "var/log/mkmedia/recover.log"
    assert copied.read_text() == "done\n" and copied.stat().st_mode & 0o777 == 0o600
    assert notes[1].startswith("logs not found")


def test_finalizeonly_refuses_when_the_target_is_not_mounted(
    stack_layout: Layout, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save(stack_layout, tmp_path / "layout")
    argv = ["finalizeonly", "--dir", str(tmp_path / "layout"), "--target", str(tmp_path / "t")]
    assert cli.main(argv) == 2
    assert "runs only inside the rescue system" in capsys.readouterr().err
    assert cli.main([*argv, "--force", "--unattended"]) == 2
    err = capsys.readouterr().err
    assert "/, /srv of the saved layout are not mounted there" in err
    assert "Run `mkmedia mountonly` or `mkmedia recover` first." in err


def test_binds_are_made_once_and_undone_also_after_a_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rescue_runtime.recover import finalize as finalize_module

    target = tmp_path / "t"
    fake = FakeRun()
    monkeypatch.setattr(finalize_module, "run", fake)
    # mountonly bound /proc already; the rescue system has /dev/pts mounted, no efivarfs
    monkeypatch.setattr(
        finalize_module, "mounted_paths", lambda: [f"{target}/proc", "/dev/pts", "/proc"]
    )
    monkeypatch.setattr(finalize_module.os.path, "isdir", lambda path: True)  # UEFI
    with pytest.raises(RuntimeError), finalize_module.bound(target, lambda line: None):
        raise RuntimeError("grub-install failed")
    made = [c[-1] for c in fake.calls if c[:2] == ["mount", "--bind"]]
    assert made == [f"{target}/{p}" for p in ("sys", "dev", "dev/pts", "run")]
    undone = [c[-1] for c in fake.calls if c[0] == "umount"]
    assert undone == list(reversed(made))
