"""`mkmedia update` in a booted rescue system: overlays from an HTTP server on this machine's
loopback (the guest reaches it at 10.0.2.2 through QEMU's user network).

One rescue ISO, built with an allowed-signers file, boots with `mkmedia.update=URL` (its boot
entries carry it: KERNEL_CMDLINE): /init applies that signed overlay (new host name, new
settings, RECOVERY_UPDATE_URL with templates) before the banner. Then `mkmedia update` alone
fetches the overlay its template names for this guest (${HOSTNAME}-${MAC}), with runtime
code, and re-executes on it; an unsigned overlay is refused and changes nothing; `--rollback`
brings the previous configuration back.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mkmedia.qemu import Guest, Machine
from tests.overlays import REQUESTED, keypair, serve
from tests.rescue_build import REPO, build_media

pytestmark = pytest.mark.vm

PROMPT = r"RESCUE [^\s:]+:[^\n]*# "
BOOT_TIMEOUT = 600  # software emulation on a shared machine; not a timing assertion
QEMU_MAC = "52:54:00:12:34:56"  # QEMU's default for the first NIC
TEMPLATE = "${HOSTNAME}-${MAC}.tar.gz"


def pack(work: Path, output: Path, host: str, *extra: str) -> None:
    layout = work / "pack-layout"
    layout.mkdir(exist_ok=True)
    (layout / "layout.json").write_text('{"disks": []}\n')
    argv = [sys.executable, "-m", "mkmedia", "update", "pack", "-c", str(work / "etc")]
    argv += ["--set", f"LAYOUT_DIR={layout}", "--host", host, "-o", str(output), *extra]
    result = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, check=False)
    assert result.returncode == 0, result.stderr


def dump(guest: Guest) -> dict[str, object]:
    status, out = guest.shell("mkmedia dump | tail -n +2")
    assert status == 0, out
    document: dict[str, object] = json.loads(out)
    return document


def test_overlays_update_the_running_rescue_system(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    key, public = keypair(tmp_path, "admin")
    signers = tmp_path / "allowed_signers"
    signers.write_text(f'admin@example.com namespaces="mkmedia-update" {public}\n')
    served = tmp_path / "served"
    served.mkdir()
    with serve(served) as port:
        base = f"http://10.0.2.2:{port}"
        # the overlay the boot option names: a new host name and RECOVERY_UPDATE_URL
        pack(
            tmp_path,
            served / "boot.tar.gz",
            "vmguest",
            "--sign-key",
            str(key),
            "--set",
            "UNATTENDED_ACTION=shell",
            "--set",
            f"RECOVERY_UPDATE_URL={base}/{TEMPLATE}",
        )
        # the one RECOVERY_UPDATE_URL names for this guest, with the runtime code
        pack(
            tmp_path,
            served / f"vmguest-{QEMU_MAC}.tar.gz",
            "vmguest",
            "--include-runtime",
            "--sign-key",
            str(key),
            "--set",
            "UNATTENDED_ACTION=poweroff",
        )
        pack(tmp_path, served / "unsigned.tar.gz", "vmguest", "--set", "UNATTENDED_ACTION=reboot")
        # a small rescue ISO whose boot entries carry the option
        media = build_media(
            tmp_path,
            output="ISO",
            sets=(
                f"UPDATE_ALLOWED_SIGNERS={signers}",
                "BOOT_DEFAULT=rescue",
                f"KERNEL_CMDLINE=mkmedia.update={base}/boot.tar.gz",
            ),
        )
        manifest = json.loads((media / "manifest.json").read_text())
        (iso,) = [Path(a["path"]) for a in manifest["artifacts"] if a["kind"] == "iso"]
        machine = Machine(firmware="bios", cdrom=iso, boot_order="d")
        log = tmp_path / "console.log"
        with Guest(machine, deadline=BOOT_TIMEOUT + 900, console_log=log, name="update") as guest:
            guest.expect(PROMPT, BOOT_TIMEOUT)
            _check_boot_update(guest)
            _check_configured_update(guest)
            _check_refused_and_rollback(guest, base)
    assert "/boot.tar.gz" in REQUESTED
    assert f"/vmguest-{QEMU_MAC}.tar.gz" in REQUESTED, REQUESTED


def _check_boot_update(guest: Guest) -> None:
    status, out = guest.shell("cat /run/mkmedia/init.status")
    assert status == 0, out
    steps = {json.loads(x)["step"]: json.loads(x) for x in out.splitlines() if x}
    assert steps["update"]["ok"], steps["update"]
    assert "signed by admin@example.com" in str(steps["update"]["message"]), steps["update"]
    config = dump(guest)
    assert config["hostname"] == "vmguest" and config["unattended_action"] == "shell", config
    status, out = guest.shell("hostname")
    assert out.strip() == "vmguest", out


def _check_configured_update(guest: Guest) -> None:
    status, out = guest.shell("mkmedia update", timeout=300)
    assert status == 0, out
    assert f"vmguest-{QEMU_MAC}.tar.gz" in out and "signed by admin@example.com" in out, out
    # the runtime code changed: the command ran again and the new process loaded it
    assert "runtime code from /var/lib/mkmedia/runtime/rescue_runtime" in out, out
    config = dump(guest)
    assert config["unattended_action"] == "poweroff", config
    status, out = guest.shell(
        "python3 -c 'import rescue_runtime.update.command as c; print(c.__file__)'"
    )
    assert out.strip().startswith("/var/lib/mkmedia/runtime/rescue_runtime/"), out


def _check_refused_and_rollback(guest: Guest, base: str) -> None:
    status, out = guest.shell(f"mkmedia update {base}/unsigned.tar.gz", timeout=300)
    assert status == 1 and "it is not signed" in out and "Nothing was changed" in out, out
    status, out = guest.shell(f"mkmedia update {base}/absent.tar.gz", timeout=300)
    assert status == 1 and "the server answered 404" in out, out
    assert dump(guest)["unattended_action"] == "poweroff"
    status, out = guest.shell("mkmedia update --rollback")
    assert status == 0 and "rolled back update 2" in out, out
    assert dump(guest)["unattended_action"] == "shell"
    status, out = guest.shell("mkmedia update --status")
    assert status == 0 and "rolled back" in out and "runtime code from /var" not in out, out
