"""The rescue system boots in QEMU and is usable: the verdicts come from inside the guest."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from mkmedia.qemu import Guest, Machine
from rescue_runtime.init.system import CONSOLE_LOGLEVEL
from tests.rescue_build import build_media

pytestmark = pytest.mark.vm

PROMPT = r"RESCUE [^\s:]+:[^\n]*# "
BOOT_TIMEOUT = 300  # software emulation on a busy machine; not a timing assertion


@pytest.fixture(scope="session")
def ramdisk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The QEMU test recipe as kernel + initrd, with an ssh key so sshd must start."""
    work = tmp_path_factory.mktemp("ramdisk")
    key = work / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    public = (work / "id_ed25519.pub").read_text().strip()
    return build_media(work, output="RAMDISK", sets=(f"SSH_AUTHORIZED_KEYS={public}",))


def machine(ramdisk: Path, tmp: Path, append: str = "", **kwargs: object) -> Machine:
    return Machine(
        kernel=ramdisk / "rescue-kernel",
        initrd=ramdisk / "rescue-initrd.img",
        append=f"console=ttyS0,115200 {append}".strip(),
        **kwargs,  # type: ignore[arg-type]
    )


def blank_disk(path: Path, size_mib: int) -> Path:
    subprocess.run(["truncate", "-s", f"{size_mib}M", str(path)], check=True)
    return path


@pytest.fixture(scope="module")
def booted(ramdisk: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Guest]:
    tmp = tmp_path_factory.mktemp("boot")
    m = machine(
        ramdisk,
        tmp,
        disks=[blank_disk(tmp / "virtio.img", 64)],
        nvme_disks=[blank_disk(tmp / "nvme.img", 64)],
    )
    with Guest(m, deadline=900, console_log=tmp / "console.log", name="rescue system") as guest:
        guest.expect(PROMPT, BOOT_TIMEOUT)
        yield guest


def test_prompt_banner_and_init_steps(booted: Guest) -> None:
    assert "mkmedia rescue system for host" in booted.output
    # every command the banner offers runs in the rescue system
    offered = re.findall(r"^  mkmedia (\S+)  ", booted.output.replace("\r", ""), re.M)
    assert "dump" in offered and "mountonly" in offered and "update" in offered
    for command in offered:
        status, out = booted.shell(f"mkmedia {command} --help")
        assert status == 0, out
    status, out = booted.shell("cat /run/mkmedia/init.status")
    assert status == 0
    steps = {json.loads(line)["step"]: json.loads(line) for line in out.splitlines() if line}
    assert {"kernel messages", "hostname", "kernel modules", "udev", "network", "sshd"} <= set(
        steps
    )
    failed = {name: s["message"] for name, s in steps.items() if not s["ok"]}
    assert not failed


def test_sshd_runs_with_keys_and_fresh_host_keys(booted: Guest) -> None:
    status, out = booted.shell(
        "kill -0 $(cat /run/sshd.pid) && echo sshd-alive; "
        "grep -c '^ssh-ed25519 ' /root/.ssh/authorized_keys; "
        "grep '^PasswordAuthentication' /etc/ssh/sshd_config; "
        "ls /etc/ssh/ssh_host_ed25519_key"
    )
    assert status == 0, out
    lines = out.splitlines()
    assert lines[:3] == ["sshd-alive", "1", "PasswordAuthentication no"], out


def test_kernel_messages_stay_off_the_console_but_reach_dmesg(booted: Guest) -> None:
    status, out = booted.shell("cat /proc/sys/kernel/printk")
    assert status == 0 and int(out.split()[0]) <= CONSOLE_LOGLEVEL, out  # booted without quiet
    # Logged now, after /init lowered the level: a routine message and an error. The shell
    # builds the texts, so the echoed command line never holds them.
    status, out = booted.shell(
        'echo "<6>mkmedia-routine-$((6 * 7))" >/dev/kmsg; '
        'echo "<3>mkmedia-error-$((6 * 7))" >/dev/kmsg'
    )
    assert status == 0, out
    status, dmesg = booted.shell("dmesg")
    assert status == 0 and "mkmedia-routine-42" in dmesg and "mkmedia-error-42" in dmesg, dmesg
    # shell() answers come base64-encoded: plain text on the console is the kernel's own
    assert "mkmedia-error-42" in booted.output  # errors still show, so the next line can fail
    assert "mkmedia-routine-42" not in booted.output


def test_mkmedia_dump_runs_inside(booted: Guest) -> None:
    status, out = booted.shell("mkmedia dump")
    assert status == 0, out
    assert "mkmedia rescue system" in out and '"hostname"' in out


def test_disks_visible(booted: Guest) -> None:
    status, out = booted.shell("lsblk -d -n -o NAME,SIZE,SERIAL")
    assert status == 0, out
    names = out.split()
    assert "vda" in names, out
    assert "nvme0n1" in names, out
    assert "mkmedia-disk0" in out and "mkmedia-nvme0" in out


def test_dhcp_address(booted: Guest) -> None:
    status, out = booted.shell("ip -4 -o addr show")
    assert status == 0
    assert "10.0.2.15/24" in out, out  # QEMU user network's DHCP lease


def test_python_and_tools_run(booted: Guest) -> None:
    for command in (
        "python3 -c 'import rescue_runtime, json, tarfile'",
        "lvm version",
        "mdadm --version",
        "cryptsetup --version",
        "parted --version",
        "modprobe -n -v dm_crypt",
    ):
        status, out = booted.shell(command)
        assert status == 0, f"{command}: {out}"


def test_options_for_missing_features_are_reported_not_run(ramdisk: Path, tmp_path: Path) -> None:
    """`unattended` asks for what this version lacks: /init says so,
    records it, runs nothing and leaves the shell; `mkmedia recover` refuses. With
    mkmedia.debug too, which keeps every kernel message on the consoles."""
    m = machine(
        ramdisk,
        tmp_path,
        "unattended mkmedia.debug",
        network=False,
    )
    with Guest(m, deadline=600, name="unattended rescue") as guest:
        guest.expect("unattended recovery is not available in this version", BOOT_TIMEOUT)
        guest.expect(PROMPT, 120)
        status, out = guest.shell("cat /proc/sys/kernel/printk")
        assert status == 0 and int(out.split()[0]) > CONSOLE_LOGLEVEL, out
        status, out = guest.shell("cat /run/mkmedia/init.status")
        assert status == 0, out
        steps = {json.loads(line)["step"]: json.loads(line) for line in out.splitlines() if line}
        assert steps["unattended"]["available"] is False
        status, out = guest.shell("mkmedia recover")
        assert status == 1 and "not implemented in this version" in out, out


def test_shell_option_stops_before_anything_runs(ramdisk: Path, tmp_path: Path) -> None:
    m = machine(ramdisk, tmp_path, "mkmedia.shell")
    with Guest(m, deadline=600, name="rescue (mkmedia.shell)") as guest:
        guest.expect("stopped before anything ran", BOOT_TIMEOUT)
        guest.expect(PROMPT, 120)
        _status, out = guest.shell("test -e /run/mkmedia/init.status; echo $?; ip -4 -o addr")
        assert out.splitlines()[0] == "1", out
        assert "10.0.2.15" not in out
