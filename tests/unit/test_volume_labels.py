"""Volume labels derived from host names fit ISO 9660 (32), Joliet (16) and FAT (11)."""

from __future__ import annotations

import re

import pytest

from mkmedia.emit import labels

HOSTS = [
    "a",
    "web01",
    "db-primary-01",
    "db-primary-01.example.com",
    "x" * 63,
    "very-long-host-name-of-a-database-server-in-the-second-room-042",
    "UPPER_and_lower.and.dots",
    "ümlaut-höst",
]
D_CHARACTERS = re.compile(r"^[A-Z0-9_]+$")


@pytest.mark.parametrize("host", HOSTS)
def test_every_label_fits_its_name_space(host: str) -> None:
    label = labels.default_label(host)
    assert labels.label_problem(label) is None
    names = labels.volume_labels(label)
    assert len(names.iso9660) <= 32 and D_CHARACTERS.match(names.iso9660)
    assert len(names.joliet) <= 16 and D_CHARACTERS.match(names.joliet)
    assert len(names.fat) <= 11 and D_CHARACTERS.match(names.fat)
    # libblkid reports the whole ISO 9660 label only when Joliet's is its prefix
    assert names.iso9660.startswith(names.joliet)
    assert labels.volume_labels(labels.default_label(host)) == names  # deterministic


def test_short_names_are_kept_whole() -> None:
    assert labels.default_label("web-01.example.com") == "RESCUE_WEB_01"
    names = labels.volume_labels("RESCUE_WEB_01")
    assert (names.iso9660, names.joliet) == ("RESCUE_WEB_01", "RESCUE_WEB_01")
    assert re.fullmatch(r"RESCUE_[0-9A-F]{4}", names.fat)


def test_the_reported_host_name() -> None:
    # 13 characters: RESCUE_<HOST> is 20, over Joliet's 16 (the pycdlib traceback)
    label = labels.default_label("db-primary-01")
    assert label == "RESCUE_DB_PRIMARY_01"
    names = labels.volume_labels(label)
    assert names.joliet == "RESCUE_DB_PRIMAR"
    assert names.fat != labels.volume_labels("RESCUE_DB_PRIMARY_02").fat


def test_long_names_that_share_their_start_stay_distinct() -> None:
    one = "very-long-host-name-of-a-database-server-in-the-second-room-041"
    two = "very-long-host-name-of-a-database-server-in-the-second-room-042"
    first, second = labels.default_label(one), labels.default_label(two)
    assert len(first) == len(second) == 32
    assert first[:27] == second[:27] and first != second
    assert labels.volume_labels(first).fat != labels.volume_labels(second).fat


@pytest.mark.parametrize(
    ("label", "problem"),
    [
        ("", "empty"),
        ("A" * 33, "33 characters"),
        ("rescue", "d-characters"),
        ("RESCUE-01", "d-characters"),
        ("RESCUE.01", "d-characters"),
    ],
)
def test_label_problems(label: str, problem: str) -> None:
    found = labels.label_problem(label)
    assert found is not None and problem in found
    assert labels.label_problem(labels.suggestion(label)) is None
