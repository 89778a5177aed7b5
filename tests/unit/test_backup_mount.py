"""The mount layer of the backup locations, where no mount is needed: which nfs://, cifs:// and
usb:// URLs and BACKUP_OPTIONS are taken or refused (and where the configuration refuses them),
the mount helpers' command lines, and what each scheme puts into the rescue system.

The mounts themselves run for real in tests/integration/test_backup_usb.py (a loop device) and
tests/vm/test_backup_remote_guest.py (NFS and CIFS servers on this host, clients in a guest).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mkmedia.config import load_config
from mkmedia.host.sysinfo import SystemInfo
from rescue_runtime.backup import mount, netshare, usbstick
from rescue_runtime.backup.netfs import Netfs
from rescue_runtime.errors import ConfigError, MissingError
from rescue_runtime.url import parse_url

CRED = "credentials=/etc/mkmedia/cifs.cred"


def test_urls_taken() -> None:
    for url in (
        "nfs://nas/srv/backups",
        "nfs://10.0.2.2:2049/export",
        "nfs://[fd00::1]/export",
        "cifs://nas/backups",
        "cifs://backup@nas:4450/backups/hosts",
        "usb:///dev/disk/by-label/MKMEDIA-000",
        "usb:///dev/sdb3",
    ):
        Netfs.check_url(url)


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("nfs:///export", "names no server"),
        ("nfs://nas:0x1/export", "port"),
        ("nfs://someone@nas/export", "NFS mounts take none"),
        ("nfs://someone:secret@nas/export", "never goes into a setting"),
        ("cifs://nas/", "names no share"),
        ("cifs://backup:secret@nas/share", "credentials file"),
        ("usb://stick/dev/sdb3", "names the host"),
        ("usb:///backup", "does not name a device"),
        ("usb:///dev/disk/by-label/REAR-000", "labelled MKMEDIA-000"),
    ],
)
def test_urls_refused(url: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        Netfs.check_url(url)
    assert words in str(info.value)
    assert "secret" not in str(info.value)  # a refused password is never repeated


@pytest.mark.parametrize(
    ("url", "options", "words"),
    [
        ("cifs://nas/share", "password=secret", "carries a password (password=...)"),
        ("cifs://nas/share", f"{CRED},pass=secret", "carries a password (pass=...)"),
        ("cifs://nas/share", f"user=backup%secret,{CRED}", "carries a password (user=...)"),
        ("cifs://nas/share", "vers=3.0", "needs credentials"),
        ("cifs://nas/share", "credentials=cifs.cred", "not an absolute path"),
        ("nfs://nas:2049/export", "port=2050", "port=2050"),
    ],
)
def test_options_refused(url: str, options: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        Netfs.check_options(url, options)
    assert words in str(info.value)
    assert "secret" not in str(info.value)


def test_options_taken() -> None:
    Netfs.check_options("cifs://nas/share", f"{CRED},vers=3.1.1")
    Netfs.check_options("cifs://nas/share", "guest")
    Netfs.check_options("cifs://nas/share", "sec=krb5i")
    Netfs.check_options("nfs://nas:2049/export", "vers=4.2,port=2049")
    Netfs.check_options("nfs://nas/export", "")
    Netfs.check_options("sshfs://nas/srv", "password_stdin")  # sshfs options are sshfs's


def test_the_configuration_refuses_a_password_in_backup_options(
    config_dir: Path, data_dir: Path, fake_system: SystemInfo
) -> None:
    sets = ("BACKUP=NETFS", "BACKUP_URL=cifs://nas/share", "BACKUP_OPTIONS=password=secret")
    with pytest.raises(ConfigError) as info:
        load_config(config_dir=config_dir, system=fake_system, sets=sets)
    message = str(info.value)
    assert "carries a password" in message and "BACKUP_OPTIONS from --set" in message, message
    assert "secret" not in message


def test_nfs_mount_command() -> None:
    point = Path("/w/m")
    argv = netshare.mount_argv(parse_url("nfs://nas:2049/srv/b"), "vers=4.2", point)
    assert argv == ["mount.nfs", "nas:/srv/b", point, "-o", "vers=4.2,port=2049"]
    argv = netshare.mount_argv(parse_url("nfs://[fd00::1]/export"), "", point)
    assert argv == ["mount.nfs", "[fd00::1]:/export", point]


def test_cifs_mount_command_names_the_credentials_file(tmp_path: Path) -> None:
    cred = tmp_path / "cifs.cred"
    cred.write_text("username=backup\npassword=secret\n")
    cred.chmod(0o600)
    url = parse_url("cifs://backup@nas:4450/share/hosts")
    argv = netshare.mount_argv(url, f"credentials={cred},vers=3.0", tmp_path / "m")
    assert argv[:3] == ["mount.cifs", "//nas/share/hosts", tmp_path / "m"]
    assert argv[3:] == ["-o", f"username=backup,credentials={cred},vers=3.0,port=4450"]
    assert "secret" not in " ".join(map(str, argv))


def test_cifs_credentials_file_must_be_there_and_private(tmp_path: Path) -> None:
    cred = tmp_path / "cifs.cred"
    url = parse_url("cifs://nas/share")
    with pytest.raises(MissingError, match="cannot be read"):
        netshare.mount_argv(url, f"credentials={cred}", tmp_path)
    cred.write_text("username=backup\npassword=secret\n")
    cred.chmod(0o644)
    with pytest.raises(ConfigError, match=r"open to other users \(mode 0644\)") as info:
        netshare.mount_argv(url, f"credentials={cred}", tmp_path)
    assert info.value.hint == f"chmod 600 {cred}"
    with pytest.raises(ConfigError, match="open to other users"):
        Netfs.rescue_files("cifs://nas/share", f"credentials={cred}")  # the build refuses too
    cred.chmod(0o600)
    assert Netfs.rescue_files("cifs://nas/share", f"vers=3.0,cred={cred}") == (str(cred),)
    assert Netfs.rescue_files("nfs://nas/export", f"credentials={cred}") == ()


def test_what_each_scheme_puts_into_the_rescue_system() -> None:
    base = set(Netfs.rescue_programs)
    assert set(Netfs.programs_for("nfs://nas/export")) - base == {"mount.nfs"}
    assert set(Netfs.programs_for("cifs://nas/share")) - base == {"mount.cifs"}
    assert set(Netfs.programs_for("usb:///dev/sdb3")) - base == {"blkid"}
    assert set(Netfs.programs_for("file:///srv")) == base
    assert {"nfs", "nfsv4"} <= set(Netfs.modules_for("nfs://nas/export"))
    assert {"cifs", "cmac", "aes", "gcm"} <= set(Netfs.modules_for("cifs://nas/share"))
    assert {"usb_storage", "xhci_pci", "ext4"} <= set(Netfs.modules_for(usbstick.DEFAULT_URL))


def test_a_file_url_is_not_mounted(tmp_path: Path) -> None:
    with mount.mounted(parse_url(f"file://{tmp_path}"), work_dir=tmp_path / "w") as directory:
        assert directory == tmp_path
    assert not (tmp_path / "w").exists()


def test_usb_device_path_that_is_not_there(tmp_path: Path) -> None:
    url = parse_url("usb:///dev/mkmedia-test/no-such-device")
    with (
        pytest.raises(MissingError, match="there is no device /dev/mkmedia-test/no-such-device"),
        mount.mounted(url, work_dir=tmp_path / "w"),
    ):
        pass
    assert list((tmp_path / "w").iterdir()) == []  # its mount point went again


def test_usb_label_search_needs_exactly_one_stick(monkeypatch: pytest.MonkeyPatch) -> None:
    """blkid's answer stands in for the sticks plugged in (two sticks cannot be arranged on a
    shared test machine; the real search runs in tests/vm/test_backup_remote_guest.py)."""
    url = parse_url(usbstick.DEFAULT_URL)
    monkeypatch.setattr(usbstick.os.path, "exists", lambda path: False)  # no udev link
    monkeypatch.setattr(usbstick, "which", lambda program: None)  # no udevadm
    found: list[str] = []
    monkeypatch.setattr(usbstick, "by_label", lambda label: found)
    with pytest.raises(MissingError, match="no file system is labelled MKMEDIA-000"):
        usbstick.find_device(url)
    found[:] = ["/dev/sdb3", "/dev/sdc3"]
    with pytest.raises(ConfigError, match=r"2 file systems are labelled MKMEDIA-000 \(/dev/sdb3"):
        usbstick.find_device(url)
    found[:] = ["/dev/sdc3"]
    assert usbstick.find_device(url) == "/dev/sdc3"
