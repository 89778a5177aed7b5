"""Build rescue media through the real `mkmedia` command, for the tests that boot them."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from mkmedia.qemu import Guest, Machine

REPO = Path(__file__).resolve().parent.parent
VM_RECIPE = REPO / "tests" / "data" / "recipes" / "vm-test.yaml"
EPOCH = "1700000000"


def build_media(
    workdir: Path,
    *,
    output: str,
    workflow: str = "build",
    recipe: Path = VM_RECIPE,
    sets: tuple[str, ...] = (),
    epoch: str | None = EPOCH,
    keep_build_dir: bool = False,
    command: Sequence[str] = (sys.executable, "-m", "mkmedia"),
    cwd: Path = REPO,
    env: Mapping[str, str] = os.environ,
) -> Path:
    """Run `mkmedia build` (or `workflow`: mkbackup) into workdir/out; return the output
    directory (host subdirectory).

    `command`, `cwd` and `env`: another mkmedia than the checkout's (an installed wheel's)."""
    out = workdir / "out"
    config_dir = workdir / "etc"
    config_dir.mkdir(parents=True, exist_ok=True)
    env = dict(env)
    env["MKMEDIA_LOCK_FILE"] = str(workdir / "lock")
    if epoch is not None:
        env["SOURCE_DATE_EPOCH"] = epoch
    argv = [
        *command,
        workflow,
        str(recipe),
        "-c",
        str(config_dir),
        "--log-file",
        str(workdir / "build.log"),
        "--set",
        f"OUTPUT={output}",
        "--set",
        f"OUTPUT_URL=file://{out}",
        "--set",
        f"TMPDIR={workdir}",
        "--set",
        "OUTPUT_PREFIX=rescue",
        # the build saves the host's layout: into the test's directory, not the shared default
        "--set",
        f"LAYOUT_DIR={workdir / 'layout'}",
    ]
    if keep_build_dir:
        argv.append("--keep-build-dir")
    for item in sets:
        argv += ["--set", item]
    result = subprocess.run(argv, capture_output=True, text=True, cwd=cwd, env=env, check=False)
    if result.returncode != 0:
        raise AssertionError(
            f"mkmedia {workflow} failed ({result.returncode}):\n{result.stderr[-4000:]}"
        )
    return out / "rescue"


# The rescue shell prompt, and a generous boot limit (software emulation on a shared machine;
# not a timing assertion).
PROMPT = r"RESCUE [^\s:]+:[^\n]*# "
BOOT_TIMEOUT = 600.0


def boot_to_prompt(machine: Machine, log: Path) -> str:
    with rescue_guest(machine, log) as guest:
        status, cmdline = guest.shell("cat /proc/cmdline", timeout=120)
        assert status == 0
        status, out = guest.shell("mkmedia dump | head -1; cat /run/mkmedia/init.status")
        assert status == 0 and "mkmedia rescue system" in out, out
        failed = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
        assert all(step["ok"] for step in failed), out
        if machine.firmware == "uefi-secure":
            _, dmesg = guest.shell("dmesg | grep -i -E 'secure boot|lockdown'")
            assert "Secure boot enabled" in dmesg, dmesg
        return cmdline


@contextlib.contextmanager
def rescue_guest(machine: Machine, log: Path, *, extra_seconds: float = 300) -> Iterator[Guest]:
    """The rescue system booted to its shell prompt; `extra_seconds`: the guest's time after
    the boot (its deadline kills QEMU)."""
    with Guest(
        machine, deadline=BOOT_TIMEOUT + extra_seconds, console_log=log, name="rescue ISO"
    ) as guest:
        guest.expect(PROMPT, BOOT_TIMEOUT)
        yield guest


# How long one shell command in a rescue guest may take (software emulation, a busy host).
SHELL_STEP = 600.0


def sh(guest: Guest, command: str, timeout: float = SHELL_STEP) -> str:
    """`command`'s output in the guest's shell; the test fails with it unless it exits 0."""
    status, out = guest.shell(command, timeout=timeout)
    assert status == 0, f"{command}: {status}\n{out}"
    return out
