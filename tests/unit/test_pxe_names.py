"""The per-client file names PXELINUX and GRUB's network boot ask the TFTP server for."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from mkmedia.emit.pxenames import client_config_names, ip_config_name, mac_config_name
from mkmedia.host.netif import host_interfaces, pxe_clients
from rescue_runtime.errors import ConfigError


@pytest.mark.parametrize(
    ("config_name", "client", "name"),
    [
        (mac_config_name, "88:99:AA:BB:CC:DD", "01-88-99-aa-bb-cc-dd"),
        (mac_config_name, "52-54-00-12-34-56", "01-52-54-00-12-34-56"),
        (mac_config_name, " 00:0c:29:00:00:0f ", "01-00-0c-29-00-00-0f"),
        (ip_config_name, "192.168.2.91", "C0A8025B"),  # PXELINUX's own example
        (ip_config_name, "10.0.2.15/24", "0A00020F"),
        (ip_config_name, "0.0.0.1", "00000001"),
        (ip_config_name, "255.255.255.255", "FFFFFFFF"),
    ],
)
def test_names_follow_pxelinux(config_name: Callable[[str], str], client: str, name: str) -> None:
    """A MAC gives 01-<lower-case hex pairs>, an IPv4 address its upper-case hex."""
    assert config_name(client) == name


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("52:54:00:12:34", "neither a MAC"),
        ("52:54-00:12:34:56", "neither a MAC"),
        ("zz:54:00:12:34:56", "neither a MAC"),
        ("fe80::1", "IPv6"),
        ("host.example", "neither a MAC"),
    ],
)
def test_bad_client_names_are_refused(text: str, why: str) -> None:
    with pytest.raises(ConfigError, match=why):
        client_config_names([text])


def test_client_list_is_sorted_and_unique() -> None:
    names = client_config_names(["10.0.2.15", "52:54:00:12:34:56", "52-54-00-12-34-56", " "])
    assert names == ["01-52-54-00-12-34-56", "0A00020F"]


def test_host_interfaces_skip_virtual_and_non_ethernet(tmp_path: Path) -> None:
    def link(name: str, kind: str, mac: str, device: bool) -> None:
        entry = tmp_path / name
        entry.mkdir()
        (entry / "type").write_text(kind + "\n")
        (entry / "address").write_text(mac + "\n")
        if device:
            (entry / "device").mkdir()

    link("eth0", "1", "52:54:00:12:34:56", True)
    link("lo", "772", "00:00:00:00:00:00", False)
    link("br0", "1", "52:54:00:aa:aa:aa", False)
    link("ib0", "32", "80:00:00:48:fe:80", True)
    (tmp_path / "drivers/virtio_net").mkdir(parents=True)
    (tmp_path / "eth0/device/driver").symlink_to(tmp_path / "drivers/virtio_net")
    found = host_interfaces(tmp_path)
    assert [(i.name, i.mac, i.driver) for i in found] == [
        ("eth0", "52:54:00:12:34:56", "virtio_net")  # finalize maps new cards by the driver
    ]
    found[0].addresses.append("192.0.2.5/24")
    assert client_config_names(pxe_clients(found)) == ["01-52-54-00-12-34-56", "C0000205"]


def test_machine_network_boot_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    """A NIC with a fixed MAC; the iPXE ROM only when asked for (BIOS network boot)."""
    from mkmedia import qemu

    monkeypatch.setattr(qemu.shutil, "which", lambda name: f"/usr/bin/{name}")
    plain = qemu.Machine().argv(None)
    assert plain[plain.index("-device") + 1] == "virtio-net-pci,netdev=n0,romfile="
    pxe = qemu.Machine(
        tftp_dir=Path("/srv/tftp"), bootfile="pxelinux.0", mac="52:54:00:aa:bb:01", nic_rom=True
    ).argv(None)
    assert pxe[pxe.index("-netdev") + 1] == "user,id=n0,tftp=/srv/tftp,bootfile=pxelinux.0"
    assert pxe[pxe.index("-device") + 1] == "virtio-net-pci,netdev=n0,mac=52:54:00:aa:bb:01"


def test_pxe_check_refuses_before_building(tmp_path: Path) -> None:
    from mkmedia.emit import MediaSpec
    from mkmedia.emit.pxe import PxeEmitter
    from rescue_runtime.errors import MissingError

    def spec(**values: object) -> MediaSpec:
        base: dict[str, object] = {
            "directory": tmp_path,
            "prefix": "vmtest",
            "host": "vmtest",
            "kernel_cmdline": "",
            "consoles": ("ttyS0,115200",),
            "boot_default": "rescue",
            "boot_timeout": 1,
            "pxe_clients": ("52:54:00:12:34:56",),
        }
        return MediaSpec(**{**base, **values})  # type: ignore[arg-type]

    PxeEmitter(spec()).check()
    with pytest.raises(ConfigError, match="PXE_CLIENTS is empty"):
        PxeEmitter(spec(pxe_clients=())).check()
    with pytest.raises(ConfigError, match="clashes with the boot loader directories"):
        PxeEmitter(spec(prefix="grub")).check()
    with pytest.raises(MissingError, match="PXE_TFTP_URL"):
        PxeEmitter(spec(tftp_dir=tmp_path / "absent")).check()
