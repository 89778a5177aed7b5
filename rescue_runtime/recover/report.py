"""The recovery report: what recover decided and changed, one line per decision.

Every part of recover that does something the operator should know about afterwards (a
disk mapped to another, a partition shrunk, an array recreated degraded, a component left
out, an fstab line rewritten) calls `note(section, line)`. The report is a plain text file
in the rescue system (/var/lib/mkmedia/recover-report.txt) that grows by appending, so a
recover that stopped and ran again keeps what the first run did; `start()` begins a new one
for a new recover. finalize copies it into the restored system's /var/log/mkmedia/ with the
logs.

File format, one line per note: `[section] text`. Sections are short lower-case words
(`mapping`, `resize`, `raid`, `exclude`, `rewrite`, ...); a note's text is one line.
"""

from __future__ import annotations

import datetime
import logging
import os
from pathlib import Path

log = logging.getLogger("mkmedia.report")

DEFAULT_REPORT = Path("/var/lib/mkmedia/recover-report.txt")
# Tests and a recover outside the rescue system point it elsewhere.
REPORT_ENV = "MKMEDIA_RECOVER_REPORT"


def report_path() -> Path:
    return Path(os.environ.get(REPORT_ENV) or DEFAULT_REPORT)


def start(title: str) -> Path | None:
    """Begin a new report (the previous recover's is replaced); returns its path, None when
    it cannot be written (the recovery goes on with the console and the log)."""
    path = report_path()
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Truncated in place, not atomically: the report is a growing log, not a result.
        with path.open("w", encoding="utf-8") as out:
            out.write(f"# mkmedia recovery report: {title}, started {stamp}\n")
        os.chmod(path, 0o600)
    except OSError as exc:
        log.warning("the recovery report %s cannot be written: %s", path, exc)
        return None
    return path


def note(section: str, line: str) -> None:
    """Append one decision to the report (and the log). A report that cannot be written
    (read-only /var) is logged and the recovery goes on: the console has the line too."""
    text = " ".join(line.splitlines())  # one note, one line
    log.info("report [%s] %s", section, text)
    path = report_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as out:
            out.write(f"[{section}] {text}\n")
    except OSError as exc:
        log.warning("the recovery report %s cannot be written: %s", path, exc)


def entries(path: Path | None = None) -> list[tuple[str, str]]:
    """The report's notes in order, as (section, text); none when there is no report."""
    try:
        lines = (path or report_path()).read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        if line.startswith("[") and "] " in line:
            section, text = line[1:].split("] ", 1)
            found.append((section, text))
    return found


def section(name: str, path: Path | None = None) -> list[str]:
    """The notes of one section, in order."""
    return [text for sec, text in entries(path) if sec == name]
