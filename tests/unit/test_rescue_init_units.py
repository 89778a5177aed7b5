"""Pieces of the rescue /init that can be checked without booting."""

from __future__ import annotations

import argparse
import json
import os
import re
import select
import time
from pathlib import Path

import pytest

from rescue_runtime import cli as rescue_cli
from rescue_runtime import features
from rescue_runtime import workflow as engine
from rescue_runtime.init import boot as init
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
    assert "NETFS at nfs://nas/backups" in text and "mkmedia dump" in text


def rescue_commands() -> set[str]:
    """The subcommands the rescue system's `mkmedia` really has."""
    parser = rescue_cli.build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return set(sub.choices)


def test_banner_offers_only_what_the_rescue_command_has() -> None:
    text = consoles.banner(RescueConfig(hostname="db7"))
    offered = set(re.findall(r"^  mkmedia (\S+)  ", text, re.M))
    assert offered and offered <= rescue_commands(), offered - rescue_commands()
    assert {f.name for f in features.ready_commands()} == offered
    assert "mountonly" in offered and "umount" in offered  # real since the mountonly issue
    assert "update" in offered  # real since the update issue
    # recover is in the command (as a refusal) but not offered as working
    assert "recover" not in offered and "mkmedia recover is not in this version yet" in text


def test_rescue_recover_refuses_and_touches_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    assert not features.RECOVER.ready
    assert rescue_cli.main(["recover", "--unattended"]) == 1
    out, err = capsys.readouterr()
    assert out == "", "no claim that anything started"
    assert "mkmedia recover is not implemented in this version of mkmedia yet" in err
    assert "no disk was touched" in err


@pytest.fixture
def boot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> init.Boot:
    """A Boot whose console and init.status are files of the test."""
    monkeypatch.setattr(init, "STATUS", tmp_path / "init.status")
    console = tmp_path / "console"
    console.touch()  # stands in for a tty, which exists before /init writes to it
    return init.Boot([str(console)])


def status_of(tmp_path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (tmp_path / "init.status").read_text().splitlines()]


def test_update_option_runs_the_update_step(
    boot: init.Boot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """mkmedia.update=URL: the boot's update step runs `mkmedia update URL` (after the
    network); /init then has nothing more to say about the option."""
    assert features.UPDATE.ready
    init.update_option(boot, "http://10.0.2.2/u.tar")
    assert (tmp_path / "console").read_text() == ""
    ran: list[str] = []
    monkeypatch.setattr(init, "_update", lambda url: ran.append(url) or "applied")
    options = cmdline.parse("mkmedia.update=http://10.0.2.2/u.tar")
    steps = [s for s in init.BOOT_STEPS if s.name == "update"]
    boot.run_steps(init.BootContext(RescueConfig(), options), steps)
    assert ran == ["http://10.0.2.2/u.tar"]
    (record,) = status_of(tmp_path)
    assert record["step"] == "update" and record["ok"] is True


def test_unattended_option_says_so_and_leaves_the_shell(
    boot: init.Boot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(init, "recover_unattended", lambda *a: pytest.fail("nothing to run"))
    monkeypatch.setattr(init, "power", lambda action: pytest.fail("no reboot"))
    init.unattended_option(boot, RescueConfig())
    console = (tmp_path / "console").read_text()
    assert "unattended recovery is not available in this version" in console
    assert "the shell is ready" in console
    (record,) = status_of(tmp_path)
    assert record["step"] == "unattended" and record["available"] is False


@pytest.mark.parametrize(("status", "outcome"), [(1, "The backup volume is truncated"), (0, "")])
def test_unattended_recovery_says_its_outcome_everywhere_and_powers_off_only_when_done(
    boot: init.Boot,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    status: int,
    outcome: str,
) -> None:
    from rescue_runtime.recover import workflow as recover_workflow

    record = tmp_path / "recover.outcome"
    recover_workflow.record_outcome(outcome or "finished", record)
    monkeypatch.setattr(recover_workflow, "OUTCOME", record)
    monkeypatch.setattr(init, "run_recover", lambda fd: status)
    powered: list[str] = []
    monkeypatch.setattr(init, "power", powered.append)
    init.recover_unattended(boot, RescueConfig(unattended_action="poweroff"))
    console = (tmp_path / "console").read_text()
    if status:
        assert f"unattended recovery FAILED (exit status 1): {outcome}" in console
        assert powered == []
    else:
        assert "unattended recovery finished; poweroff" in console
        assert powered == ["poweroff"]


def test_rescue_config_round_trip() -> None:
    config = RescueConfig(
        hostname="h",
        saved_interfaces=[SavedInterface("eth0", "52:54:00:12:34:56", ["10.0.0.5/24"], "10.0.0.1")],
        modules_load=["virtio_net"],
    )
    again = RescueConfig.from_json(config.to_json())
    assert again == config


def read_until(fd: int, marker: str, seconds: float = 10.0) -> str:
    """What the pty shows, read until `marker` and its line are there (a loaded machine
    hands the lines over in pieces)."""
    text, end = "", time.monotonic() + seconds
    while time.monotonic() < end:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            text += os.read(fd, 65536).decode()
        elif marker in text and text.endswith("\n"):
            break
    return text


def test_a_failing_boot_step_is_reported_everywhere_and_the_boot_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(init, "STATUS", tmp_path / "init.status")
    # a real terminal (a pty) as the console: it keeps every line, as a screen does
    master, slave = os.openpty()
    boot = init.Boot([os.ttyname(slave)])

    def broken(ctx: init.BootContext) -> None:
        raise RuntimeError("no such device")

    steps: list[init.BootStep] = [
        engine.Step("boot", 100, "first", broken),
        engine.Step("boot", 200, "second", lambda ctx: f"host {ctx.config.hostname}"),
    ]
    boot.run_steps(init.BootContext(RescueConfig(hostname="h1"), cmdline.BootOptions()), steps)
    console = read_until(master, "mkmedia init: second:")
    os.close(slave)
    os.close(master)
    assert "mkmedia init: first FAILED: RuntimeError: no such device" in console
    assert "mkmedia init: second: host h1" in console
    first, second = status_of(tmp_path)
    assert (first["step"], first["ok"]) == ("first", False)
    assert "no such device" in str(first["message"])
    assert (second["step"], second["ok"], second["message"]) == ("second", True, "host h1")
    assert set(first) == {"step", "ok", "message", "seconds"}, "init.status keeps its format"
    assert boot.failures == ["first"]


def test_boot_steps_in_order_and_update_only_when_asked_and_ready() -> None:
    def planned(options: cmdline.BootOptions) -> list[str]:
        ((_stage, steps),) = engine.plan(init.BOOT, init.BOOT_STEPS, options)
        return [s.name for s in steps]

    base = ["kernel messages", "hostname", "kernel modules", "udev", "network", "sshd"]
    assert planned(cmdline.BootOptions()) == base
    asked = cmdline.BootOptions(update_url="http://10.0.2.2/u.tar")
    assert planned(asked) == base + (["update"] if features.UPDATE.ready else [])
