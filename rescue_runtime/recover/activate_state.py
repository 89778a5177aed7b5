"""What `mkmedia mountonly` brought up, and the breadcrumb that keeps later commands honest.

The state file (/run/mkmedia/activate.json) lists every step in the order it was taken; a
step is written *before* its command runs ("pending") and marked done after, so a failure
halfway still leaves a record of everything that may be up and `mkmedia umount` can undo
exactly that, newest first. The breadcrumb (/run/mkmedia/disks-changed) is written by the
first step that changes anything; from then on only the commands in `ALLOWED_AFTER` may run
until the rescue system is rebooted (/run does not survive a reboot).
"""

from __future__ import annotations

import datetime
import json
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rescue_runtime.errors import MkmediaError
from rescue_runtime.layout.store import _write_atomic as write_atomic

DEFAULT_RUN_DIR = "/run/mkmedia"
STATE_NAME = "activate.json"
BREADCRUMB_NAME = "disks-changed"
# What may follow once mountonly changed the disks' state (issue 16, ReaR PR 2269).
ALLOWED_AFTER = frozenset({"restoreonly", "finalizeonly", "umount", "shell", "dump"})
# The commands the rules refuse; the rescue CLI checks these before running them.
INTERLOCKED = frozenset({"recover", "layoutonly", "mountonly"})
KINDS = ("md", "luks", "vg", "mount", "bind")


class DiskStateError(MkmediaError):
    """A command that needs the disks as the rescue system found them, after mountonly."""


class StateError(MkmediaError):
    """The state file cannot be read."""


def run_dir() -> Path:
    # The tests point this elsewhere; in the rescue system it is /run/mkmedia.
    return Path(os.environ.get("MKMEDIA_RUN_DIR", DEFAULT_RUN_DIR))


@dataclass
class Entry:
    """One thing mountonly brought up. `kind` says which fields count:
    md: device (+ uuid); luks: name (+ device); vg: name; mount and bind: path (+ device)."""

    kind: str
    name: str = ""
    device: str = ""
    path: str = ""
    uuid: str | None = None
    done: bool = False

    def describe(self) -> str:
        if self.kind == "md":
            return f"MD array {self.device}"
        if self.kind == "luks":
            return f"LUKS mapping {self.name}"
        if self.kind == "vg":
            return f"LVM volume group {self.name}"
        return f"{'bind mount' if self.kind == 'bind' else 'mount'} {self.path}"


@dataclass
class State:
    target: str
    entries: list[Entry] = field(default_factory=list)
    started_at: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str) -> State:
        try:
            data: dict[str, Any] = json.loads(text)
            entries = [Entry(**e) for e in data["entries"]]
            bad = [e.kind for e in entries if e.kind not in KINDS]
            if bad:
                raise ValueError(f"unknown step kind {bad[0]!r}")
            return cls(target=data["target"], entries=entries, started_at=data["started_at"])
        except (ValueError, KeyError, TypeError) as exc:
            raise StateError(
                f"The mountonly state file {source} cannot be read ({exc}).",
                hint="Undo the mounts by hand (umount, vgchange -an, cryptsetup close, "
                "mdadm --stop), remove the file, or reboot the rescue system.",
            ) from None


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, text)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat()


class StateFile:
    """The state on disk, rewritten (atomically) after every change."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or run_dir()
        self.path = self.directory / STATE_NAME

    def load(self) -> State | None:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return None
        return State.from_json(text, str(self.path))

    def save(self, state: State) -> None:
        if state.entries:
            _write_atomic(self.path, state.to_json())
        elif self.path.exists():
            self.path.unlink()

    def begin(self, state: State, entry: Entry, command: str) -> None:
        """Record a step before it runs; the first one also leaves the breadcrumb."""
        write_breadcrumb(command, self.directory)
        entry.done = False
        state.entries.append(entry)
        self.save(state)

    def done(self, state: State, entry: Entry) -> None:
        entry.done = True
        self.save(state)

    def forget(self, state: State, entry: Entry) -> None:
        state.entries.remove(entry)
        self.save(state)


def write_breadcrumb(command: str, directory: Path | None = None) -> None:
    path = (directory or run_dir()) / BREADCRUMB_NAME
    if path.exists():
        return
    _write_atomic(path, json.dumps({"command": command, "at": _now(), "pid": os.getpid()}) + "\n")


def read_breadcrumb(directory: Path | None = None) -> dict[str, Any] | None:
    path = (directory or run_dir()) / BREADCRUMB_NAME
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError:
        data = {}  # unreadable but present: the disks were still touched
    return data if isinstance(data, dict) else {}


def require_known_disk_state(command: str, force: bool, directory: Path | None = None) -> None:
    """Refuse `command` once mountonly changed the disks' state, unless it is one of
    ALLOWED_AFTER; with `force`, go on after an explicit warning on stderr."""
    crumb = read_breadcrumb(directory)
    if crumb is None or command in ALLOWED_AFTER:
        return
    by = crumb.get("command", "mountonly")
    when = crumb.get("at", "an unknown time")
    path = (directory or run_dir()) / BREADCRUMB_NAME
    what = (
        f"mkmedia {by} changed the disks' state at {when} (arrays assembled, volumes opened "
        f"or mounted, recorded in {path})"
    )
    if force:
        print(
            f"mkmedia: warning: the disks are no longer in a known state: {what}; "
            f"--force given, so {command} goes on anyway.",
            file=sys.stderr,
            flush=True,
        )
        return
    allowed = ", ".join(sorted(ALLOWED_AFTER))
    raise DiskStateError(
        f"{command} refused: the disks are no longer in a known state: reboot the rescue "
        f"system first. {what}.",
        hint=f"After mountonly only {allowed} may run; `--force` overrides this at your own risk.",
    )
