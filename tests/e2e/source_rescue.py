"""Rescue media built inside a source machine, as its admin would: `mkmedia build` runs in
the booted source (its own kernel, binaries and disk layout; mkmedia from this checkout on
the job share), and the ISO comes out on the share."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tests.e2e import source
from tests.e2e.guest_mkmedia import mkmedia_command, stage_mkmedia

BUILD_JOB = """#!/bin/sh
set -e
{build} --log-file /run/job/mkmedia.log \\
    --set OUTPUT_URL=file:///run/job/out --set BOOT_DEFAULT=rescue --set BOOT_TIMEOUT=2
cp /var/lib/mkmedia/layout/layout.json /run/job/layout.json
uname -r > /run/job/kernel.txt
"""


@dataclass(frozen=True)
class SourceRescue:
    machine: source.SourceMachine
    iso: Path
    layout: Path  # the layout.json the build saved in the source
    kernel: str  # the source's running kernel (uname -r)
    disks: list[Path]  # the source's overlay disks as the build left them: one test may change them


def build_rescue_in_source(machine: source.SourceMachine, work: Path) -> SourceRescue:
    """Boot the source on fresh overlays of its disks under `work`, build its rescue ISO."""
    job = work / "job"
    job.mkdir(parents=True)
    stage_mkmedia(job)
    (job / "run.sh").write_text(BUILD_JOB.format(build=mkmedia_command("build")))
    (job / "run.sh").chmod(0o755)
    (job / "poweroff").touch()
    disks = machine.overlays(work / "disks")
    with source.boot_source(machine, disks, job, console_log=work / "source.log") as guest:
        guest.expect(r"MKMEDIA-JOB-END rc=(\d+)", timeout=source.PROVISION_DEADLINE)
        log = (job / "run.log").read_text()
        assert "MKMEDIA-JOB-END rc=0" in guest.output, log[-3000:]
        guest.wait_exit(300)
    manifest = json.loads(next((job / "out").glob("*/manifest.json")).read_text())
    (iso_name,) = [Path(a["path"]).name for a in manifest["artifacts"] if a["kind"] == "iso"]
    (iso,) = (job / "out").glob(f"*/{iso_name}")
    kernel = (job / "kernel.txt").read_text().strip()
    return SourceRescue(
        machine=machine, iso=iso, layout=job / "layout.json", kernel=kernel, disks=disks
    )
