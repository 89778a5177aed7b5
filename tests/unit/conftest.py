"""Layouts captured from recorded tool outputs, shared by the tests that plan on them
(mountonly's activation, the recreate script)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rescue_runtime.layout.capture import capture
from rescue_runtime.layout.model import Layout
from tests.unit.test_layout_capture_stack import ReplayProbe
from tests.unit.test_layout_guest_replay import REPLAY, GuestReplay


@pytest.fixture(scope="module")
def guest_layout() -> Layout:
    """The storage guest's stacks (GPT + LVM, MBR logical, RAID1 + LUKS2 + LVM, btrfs)."""
    return capture("/", probe=GuestReplay(json.loads(REPLAY.read_text())))


@pytest.fixture(scope="module")
def stack_layout() -> Layout:
    """The written RAID1-with-spare + LUKS2 + thin LVM machine, its job disk left out."""
    return capture("/", exclude_disks=["/dev/vdd"], probe=ReplayProbe())


@pytest.fixture(autouse=True)
def recover_report(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Each test's recovery report is its own file, never the host's /var/lib/mkmedia."""
    from rescue_runtime.recover import report

    path = tmp_path_factory.mktemp("report") / "recover-report.txt"
    monkeypatch.setenv(report.REPORT_ENV, str(path))
    return path
