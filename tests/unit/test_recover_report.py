"""The recovery report: notes appended in order, a new recover starts a new one, and
finalize copies it into the restored system with the logs."""

from __future__ import annotations

from pathlib import Path

from rescue_runtime.recover import report
from rescue_runtime.recover.finalize_cli import rescue_logs
from rescue_runtime.recover.finalize_system import copy_logs


def test_notes_are_appended_in_order_and_read_back_by_section(recover_report: Path) -> None:
    report.note("resize", "vda2 shrunk from 8 GiB to 4 GiB")
    report.note("raid", "md0 recreated degraded:\nmember vdb missing")
    report.note("resize", "root fills its LV")
    assert report.entries() == [
        ("resize", "vda2 shrunk from 8 GiB to 4 GiB"),
        ("raid", "md0 recreated degraded: member vdb missing"),  # one note, one line
        ("resize", "root fills its LV"),
    ]
    assert report.section("resize") == ["vda2 shrunk from 8 GiB to 4 GiB", "root fills its LV"]
    assert (
        recover_report.read_text().splitlines()[1]
        == "[raid] md0 recreated degraded: member vdb missing"
    )


def test_start_begins_a_new_report(recover_report: Path) -> None:
    report.note("exclude", "from an earlier run")
    assert report.start("recover") == recover_report
    assert report.entries() == []
    assert recover_report.read_text().startswith("# mkmedia recovery report: recover")
    assert recover_report.stat().st_mode & 0o077 == 0


def test_an_unwritable_report_does_not_stop_the_recovery(monkeypatch, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv(report.REPORT_ENV, str(blocker / "recover-report.txt"))
    assert report.start("recover") is None
    report.note("resize", "not written anywhere")  # logged, no exception
    assert report.entries() == []


def test_finalize_copies_the_report_into_the_restored_system(
    recover_report: Path, tmp_path: Path
) -> None:
    report.note("rewrite", "fstab: /dev/vda1 -> /dev/nvme0n1p1")
    logs = rescue_logs(globs=())
    assert logs == [recover_report]
    copy_logs(logs, tmp_path / "target")
    copied = tmp_path / "target/var/log/mkmedia/recover-report.txt"
    assert copied.read_text() == recover_report.read_text()
