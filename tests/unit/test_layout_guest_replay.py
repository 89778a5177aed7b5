"""capture() replayed from every tool output recorded in the storage guest of
tests/vm/test_layout_guest.py (tests/data/layout/guest/replay.json, made by record.py in
that guest): the same checks as the guest test (tests/layout_checks.py), on real LVM, MD,
LUKS2, thin and btrfs reports, without a guest. Re-recording the file keeps these tests
valid."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rescue_runtime.layout.capture import capture
from rescue_runtime.layout.compare import compare
from rescue_runtime.layout.graph import build_graph
from rescue_runtime.layout.model import Layout
from rescue_runtime.layout.serial import from_json, to_json
from tests.layout_checks import CHECKS

REPLAY = Path(__file__).resolve().parents[1] / "data" / "layout" / "guest" / "replay.json"


class GuestReplay:
    """Answers capture's probe calls with what the guest answered; anything else fails."""

    def __init__(self, record: dict[str, Any]) -> None:
        self.record = record
        self.answers = {tuple(c["argv"]): c["stdout"] for c in record["calls"]}
        self.asked: list[tuple[str, ...]] = []

    def tool(self, argv: list[str], *, what: str, ok_codes: tuple[int, ...] = (0,)) -> str | None:
        key = tuple(argv)
        if key not in self.answers:
            raise AssertionError(f"capture ran a command the guest was not asked: {argv}")
        self.asked.append(key)
        answer: str | None = self.answers[key]
        return answer

    def read(self, path: str) -> str | None:
        text: str | None = self.record["files"].get(path)
        return text

    def links(self, directory: str) -> dict[str, str]:
        found: dict[str, str] = self.record["links"].get(directory, {})
        return found

    def cannot_open(self, device: str) -> str | None:
        problem: str | None = self.record["unreadable"].get(device)
        return problem


@pytest.fixture(scope="module")
def record() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(REPLAY.read_text())
    return data


@pytest.fixture(scope="module")
def layout(record: dict[str, Any]) -> Layout:
    return capture("/", probe=GuestReplay(record))


@pytest.mark.parametrize("stack", sorted(CHECKS))
def test_stack_captured_from_guest_outputs(layout: Layout, stack: str) -> None:
    CHECKS[stack](layout)


def test_every_recorded_call_is_replayed(record: dict[str, Any]) -> None:
    probe = GuestReplay(record)
    capture("/", probe=probe)
    assert sorted(probe.asked) == sorted(probe.answers)


def test_graph_resolves_and_round_trips(layout: Layout) -> None:
    graph = build_graph(layout)
    assert graph.unresolved == {}
    again = from_json(to_json(layout))
    assert compare(layout, again) == []
    # The LUKS mapping sits on the array, the VG on the mapping, the mount on the LV.
    chain = graph.dependencies_of_mount("/mnt/sec/home")
    for node in ("md:/dev/md0", "luks:/dev/mapper/secure", "vg:vgsec", "lv:vgsec/home"):
        assert node in chain, chain
