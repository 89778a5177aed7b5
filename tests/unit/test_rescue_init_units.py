"""Pieces of the rescue /init that can be checked without booting."""

from __future__ import annotations

from pathlib import Path

from rescue_runtime.init import cmdline, consoles, network, system
from rescue_runtime.rescueconf import RescueConfig, SavedInterface


def test_cmdline_options_and_unknown_ignored() -> None:
    options = cmdline.parse(
        "BOOT_IMAGE=/vmlinuz quiet unattended mkmedia.debug mkmedia.update=http://x/u.tar "
        'console=tty0 console=ttyS0,115200 ip=dhcp foo="a b" nonsense'
    )
    assert options.unattended and options.debug and not options.shell
    assert options.update_url == "http://x/u.tar"
    assert options.ip == ["dhcp"]
    assert cmdline.console_devices(options.consoles) == ["/dev/tty1", "/dev/ttyS0"]
    assert cmdline.console_devices([]) == ["/dev/console"]
    assert cmdline.parse("mkmedia.shell").shell


def test_console_log_level_is_lowered_not_raised(tmp_path: Path) -> None:
    printk = tmp_path / "printk"
    printk.write_text("7\t4\t1\t7\n")  # a boot without `quiet`: info messages on the console
    assert "mkmedia.debug" in system.quiet_kernel_console(debug=True, printk=printk)
    assert printk.read_text().split() == ["7", "4", "1", "7"]  # debug: every message shown
    assert "7 -> 4" in system.quiet_kernel_console(printk=printk)
    # only the console level changes; the default levels stay as the kernel had them
    assert printk.read_text().split() == ["4", "4", "1", "7"]
    printk.write_text("3 4 1 7\n")  # already lower (loglevel=3): left alone
    assert "kept" in system.quiet_kernel_console(printk=printk)
    assert printk.read_text() == "3 4 1 7\n"


def test_netmask_prefix() -> None:
    assert network.netmask_to_prefix("255.255.255.0") == 24
    assert network.netmask_to_prefix("255.255.240.0") == 20
    assert network.netmask_to_prefix("16") == 16
    for typo in ("255.255.x.0", "255.0.255.0", "33", "255.255.255.0.0", "-1"):
        assert network.netmask_to_prefix(typo) is None, typo
    # A bad netmask on the boot prompt configures nothing (and runs no command) instead of
    # stopping init's network step with a ValueError.
    assert network.configure_ip_option("10.0.0.2::10.0.0.1:255.255.x.0::eth0:none") == []


def test_banner_names_host_backup_and_commands() -> None:
    text = consoles.banner(
        RescueConfig(
            hostname="db7",
            created="2026-11-23T05:00:00Z",
            backup="NETFS",
            backup_url="nfs://nas/backups",
        )
    )
    assert "host db7" in text and "2026-11-23T05:00:00Z" in text
    assert "NETFS at nfs://nas/backups" in text and "mkmedia recover" in text


def test_rescue_config_round_trip() -> None:
    config = RescueConfig(
        hostname="h",
        saved_interfaces=[SavedInterface("eth0", "52:54:00:12:34:56", ["10.0.0.5/24"], "10.0.0.1")],
        modules_load=["virtio_net"],
    )
    again = RescueConfig.from_json(config.to_json())
    assert again == config
