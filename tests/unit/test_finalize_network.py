"""Network cards after a move: which new card takes a gone card's place (mapping file, the
one new card, driver and order; a guess asked or refused), and every kind of restored
configuration that names the old MAC rewritten and reported."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rescue_runtime.errors import ConfigError, MissingError
from rescue_runtime.recover import report
from rescue_runtime.recover.finalize_network import (
    Nic,
    finalize_network,
    present_nics,
    propose_nics,
    read_mac_mapping,
    resolve_nics,
)
from tests.files import write_file, write_files

OLD = "52:54:00:1a:2b:3c"
OLD2 = "52:54:00:1a:2b:3d"
NEW = "52:54:00:ab:cd:ef"
NEW2 = "52:54:00:ab:cd:f0"


def test_present_cards_come_from_sysfs(tmp_path: Path) -> None:
    """A made-up /sys/class/net: no NIC hardware is needed to read it."""
    sys_net = tmp_path / "net"
    write_file(sys_net / "lo/address", "00:00:00:00:00:00\n")
    write_file(sys_net / "enp1s0/address", NEW.upper() + "\n")
    driver = tmp_path / "drivers/virtio_net"
    driver.mkdir(parents=True)
    (sys_net / "enp1s0/device").mkdir()
    os.symlink(driver, sys_net / "enp1s0/device/driver")
    assert present_nics(sys_net) == [Nic("enp1s0", NEW, "virtio_net")]


def test_one_gone_card_takes_the_one_new_one() -> None:
    result = propose_nics([Nic("ens3", OLD, "virtio_net")], [Nic("enp1s0", NEW, "e1000e")])
    assert result.pairs == {OLD: NEW} and not result.ambiguous


def test_a_card_still_here_stays_and_drivers_decide_in_name_order() -> None:
    saved = [
        Nic("eth0", OLD, "e1000e"),
        Nic("eth1", OLD2, "e1000e"),
        Nic("eth2", "02:00:00:00:00:09", "ixgbe"),
    ]
    present = [
        Nic("eno2", NEW2, "e1000e"),
        Nic("eno1", NEW, "e1000e"),
        Nic("eth2", "02:00:00:00:00:09", "ixgbe"),
    ]
    result = propose_nics(saved, present)
    assert result.pairs == {OLD: NEW, OLD2: NEW2}
    assert result.reasons[OLD] == "driver e1000e, in name order (eno1)"


def test_a_guess_is_refused_unattended_and_asked_interactive() -> None:
    saved = [Nic("eth0", OLD, "e1000e"), Nic("eth1", OLD2, "igb")]
    present = [Nic("eno1", NEW, "virtio_net"), Nic("eno2", NEW2, "virtio_net")]
    with pytest.raises(MissingError) as refused:
        resolve_nics(saved, present, {}, None)
    assert "nothing was touched" in str(refused.value)
    assert f"'{OLD} {NEW}'" in (refused.value.hint or "")  # the mapping file line
    questions: list[str] = []
    answers = iter(["nonsense", NEW2.upper(), "-"])

    def ask(question: str, default: str) -> str:
        questions.append(question)
        return next(answers)

    result = resolve_nics(saved, present, {}, ask)
    assert result.pairs == {OLD: NEW2} and not result.ambiguous and len(questions) == 3
    assert OLD2 not in result.pairs  # left as it is


def test_the_mapping_file_wins_and_is_checked(tmp_path: Path) -> None:
    path = write_file(tmp_path / "mac", f"# old new\n{OLD.upper()} {NEW}\n{OLD2} -\n")
    given = read_mac_mapping(path)
    assert given == {OLD: NEW, OLD2: "-"}
    saved = [Nic("eth0", OLD), Nic("eth1", OLD2)]
    result = propose_nics(saved, [Nic("x", NEW), Nic("y", NEW2)], given)
    assert result.pairs == {OLD: NEW} and not result.ambiguous
    with pytest.raises(ConfigError, match="which no card here has"):
        propose_nics(saved, [Nic("y", NEW2)], given)
    for bad in (f"{OLD}\n", f"{OLD} not-a-mac\n", f"{OLD} {NEW}\n{OLD} {NEW2}\n"):
        with pytest.raises(ConfigError, match="line"):
            read_mac_mapping(write_file(tmp_path / "bad", bad))
    assert read_mac_mapping(tmp_path / "none") == {}


RESTORED = {
    "etc/systemd/network/10-lan.link": f"[Match]\nMACAddress={OLD}\n\n[Link]\nName=lan0\n",
    "etc/systemd/network/20-lan.network": f"[Match]\nPermanentMACAddress={OLD.upper()}\n"
    "[Network]\nDHCP=yes\n",
    "etc/udev/rules.d/70-persistent-net.rules": (
        f'SUBSYSTEM=="net", ACTION=="add", ATTR{{address}}=="{OLD}", NAME="eth0"\n'
        f'SUBSYSTEM=="net", ACTION=="add", ATTR{{address}}=="{OLD2}", NAME="eth1"\n'
    ),
    "etc/NetworkManager/system-connections/lan.nmconnection": (
        f"[connection]\nid=lan\n[ethernet]\nmac-address={OLD.upper()}\ncloned-mac-address={OLD}\n"
    ),
    "etc/network/interfaces": f"iface eth0 inet dhcp\n    hwaddress ether {OLD}\n",
    "etc/hosts": f"# {OLD} is not a network configuration\n",
}


def test_every_kind_of_configuration_follows_the_new_card(
    tmp_path: Path, recover_report: Path
) -> None:
    target = write_files(tmp_path / "t", RESTORED)
    nm = target / "etc/NetworkManager/system-connections/lan.nmconnection"
    nm.chmod(0o600)
    present = [Nic("enp1s0", NEW), Nic("eth1", OLD2)]  # eth1's card is still here
    mapping = propose_nics([Nic("eth0", OLD), Nic("eth1", OLD2)], present)
    notes = finalize_network(target, mapping, present)

    assert f"MACAddress={NEW}\n" in (target / "etc/systemd/network/10-lan.link").read_text()
    network = (target / "etc/systemd/network/20-lan.network").read_text()
    assert f"PermanentMACAddress={NEW.upper()}\n" in network
    rules = (target / "etc/udev/rules.d/70-persistent-net.rules").read_text().splitlines()
    assert f'ATTR{{address}}=="{NEW}"' in rules[0] and OLD2 in rules[1]
    assert nm.read_text().endswith(f"mac-address={NEW.upper()}\ncloned-mac-address={OLD}\n")
    assert nm.stat().st_mode & 0o777 == 0o600
    assert (target / "etc/network/interfaces").read_text().endswith(f"hwaddress ether {NEW}\n")
    assert (target / "etc/hosts").read_text() == RESTORED["etc/hosts"]
    lines = report.section("network", recover_report)
    assert f"card {OLD} -> {NEW} (the one new card (enp1s0))" in lines
    assert f"/etc/network/interfaces: 'hwaddress ether {OLD}' -> 'hwaddress ether {NEW}'" in lines
    assert len(lines) == 6 and not any(n.startswith("WARNING") for n in notes)


def test_a_mac_nobody_knows_is_left_with_a_warning(tmp_path: Path) -> None:
    target = write_files(tmp_path / "t", {"etc/network/interfaces": f"  hwaddress {OLD2}\n"})
    notes = finalize_network(target, propose_nics([], []), [Nic("enp1s0", NEW)])
    assert notes[0].startswith(f"WARNING: the restored network configuration names {OLD2}")
    assert (target / "etc/network/interfaces").read_text() == f"  hwaddress {OLD2}\n"
