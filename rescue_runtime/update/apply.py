"""Apply a checked overlay atomically, record what changed, and roll the newest one back.

Everything is staged before anything is swapped: each new file or link is written under a
temporary name beside its destination (rescue_runtime/atomic.py) and the previous contents are
copied into the update's record directory (/var/lib/mkmedia/update/history/NNN). Only then are
the temporaries renamed into place, together; should a rename fail, what was already swapped
is put back from the copies. `rollback` restores the newest applied update's previous state.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rescue_runtime import atomic
from rescue_runtime.errors import MkmediaError
from rescue_runtime.rescueconf import RescueConfig
from rescue_runtime.update.overlay import (
    CONFIG_DIR,
    RUNTIME_DIR,
    STATE_DIR,
    Entry,
    Overlay,
    purpose_of,
    refused,
    under,
)

RECORD = "record.json"


@dataclass
class Change:
    path: str  # relative to the root
    action: str  # added | replaced
    kind: str  # file | dir | symlink
    purpose: str
    before: str = ""  # "file" | "symlink" | "" (nothing was there)


@dataclass
class Record:
    number: int
    source: str
    sha256: str
    signer: str | None
    applied_at: str
    status: str = "staged"  # staged | applied | rolled back
    changes: list[Change] = field(default_factory=list)
    unchanged: int = 0

    @property
    def runtime_changed(self) -> bool:
        return any(under(c.path, RUNTIME_DIR) for c in self.changes)

    @property
    def config_changed(self) -> bool:
        return any(under(c.path, CONFIG_DIR) for c in self.changes)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Record:
        data = json.loads(text)
        data["changes"] = [Change(**c) for c in data.get("changes", [])]
        return cls(**data)

    def summary(self) -> str:
        added = sum(c.action == "added" for c in self.changes)
        replaced = len(self.changes) - added
        head = (
            f"update {self.number} from {self.source}: {replaced} replaced, {added} added, "
            f"{self.unchanged} unchanged"
        )
        if self.signer:
            head += f" (signed by {self.signer})"
        lines = [head] + [
            f"  {c.action:<8} /{c.path} ({c.purpose})" for c in self.changes if c.kind != "dir"
        ]
        return "\n".join(lines)


def history_dir(root: Path) -> Path:
    return root / STATE_DIR / "history"


def _numbers(root: Path) -> list[int]:
    base = history_dir(root)
    if not base.is_dir():
        return []
    return sorted(int(p.name) for p in base.iterdir() if p.name.isdigit())


def records(root: Path) -> list[Record]:
    base = history_dir(root)
    return [Record.from_json((base / f"{n:04d}" / RECORD).read_text()) for n in _numbers(root)]


def _check_target(root: Path, entry: Entry, source: str) -> Path:
    """The entry's place under root; refuses writing through a symbolic link of this system."""
    target = root / entry.path
    current = root
    for part in Path(entry.path).parts[:-1]:
        current = current / part
        if current.is_symlink():
            raise refused(
                source,
                f"/{entry.path} would be written through the symbolic link "
                f"/{current.relative_to(root)} of this system",
            )
        if current.exists() and not current.is_dir():
            raise refused(source, f"/{current.relative_to(root)} is a file here, not a directory")
    if entry.kind == "dir":
        if target.exists() and (target.is_symlink() or not target.is_dir()):
            raise refused(source, f"/{entry.path} is a directory in the overlay, not here")
    elif target.is_dir() and not target.is_symlink():
        raise refused(source, f"/{entry.path} is a directory here, not in the overlay")
    return target


def _unchanged(target: Path, entry: Entry) -> bool:
    if entry.kind == "dir":
        return target.is_dir()
    if entry.kind == "symlink":
        return target.is_symlink() and os.readlink(target) == entry.target
    if target.is_symlink() or not target.is_file():
        return False
    same_mode = (target.stat().st_mode & 0o7777) == entry.mode
    return same_mode and target.read_bytes() == entry.data


def check_contents(overlay: Overlay) -> None:
    """What the rescue system will read must parse: a bad rescue.json is refused here."""
    for entry in overlay.files:
        if entry.path == f"{CONFIG_DIR}/rescue.json":
            try:
                RescueConfig.from_json(entry.data.decode())
            except (ValueError, TypeError, AttributeError) as exc:
                raise refused(overlay.source, f"its /{entry.path} cannot be used ({exc})") from exc


def apply_overlay(root: Path, overlay: Overlay, sha256: str, signer: str | None) -> Record:
    """Stage, then swap in, every entry that differs; the record of what changed."""
    check_contents(overlay)
    targets = [(entry, _check_target(root, entry, overlay.source)) for entry in overlay.entries]
    number = (_numbers(root) or [0])[-1] + 1
    record = Record(number, overlay.source, sha256, signer, _now())
    record_dir = history_dir(root) / f"{number:04d}"
    changed: list[tuple[Entry, Path]] = []
    for entry, target in targets:
        if _unchanged(target, entry):
            record.unchanged += entry.kind != "dir"
            continue
        before = "symlink" if target.is_symlink() else "file" if target.exists() else ""
        action = "replaced" if before else "added"
        record.changes.append(
            Change(entry.path, action, entry.kind, purpose_of(entry.path), before)
        )
        changed.append((entry, target))
    if not changed:
        return record
    with atomic.atomic_path(record_dir) as tmp:
        tmp.mkdir()
        for change in record.changes:
            if change.before:
                _save_before(root / change.path, tmp / "before" / change.path)
        (tmp / RECORD).write_text(record.to_json())
    made_dirs: list[Path] = []
    try:
        _swap(changed, made_dirs)
    except OSError as exc:
        _undo(root, record, record_dir, made_dirs)
        raise MkmediaError(
            f"Applying the overlay {overlay.source} failed ({exc}); what it had changed was "
            "put back, so nothing was changed.",
            hint="Check the free space (df /) and the messages above, then try again.",
        ) from exc
    except BaseException:
        _undo(root, record, record_dir, made_dirs)
        raise
    record.status = "applied"
    atomic.write_text(record_dir / RECORD, record.to_json())
    return record


def _save_before(target: Path, copy: Path) -> None:
    copy.parent.mkdir(parents=True, exist_ok=True)
    if target.is_symlink():
        os.symlink(os.readlink(target), copy)
    else:
        shutil.copy2(target, copy)


def _swap(changed: list[tuple[Entry, Path]], made_dirs: list[Path]) -> None:
    """Stage every file and link under a temporary name, then rename them all into place."""
    with contextlib.ExitStack() as stack:
        for entry, target in changed:
            if entry.kind == "dir":
                if not target.is_dir():  # a file listed before its directory made it
                    target.mkdir(mode=entry.mode or 0o755)
                    made_dirs.append(target)
                continue
            for parent in reversed(target.parents):
                if not parent.exists():
                    parent.mkdir()
                    made_dirs.append(parent)
            mode = None if entry.kind == "symlink" else entry.mode
            tmp = stack.enter_context(atomic.atomic_path(target, mode=mode))
            if entry.kind == "symlink":
                os.symlink(entry.target, tmp)
            else:
                tmp.write_bytes(entry.data)
        # leaving the stack renames every temporary onto its destination


def _undo(root: Path, record: Record, record_dir: Path, made_dirs: list[Path]) -> None:
    """A swap that failed halfway: put back what it replaced, remove what it added."""
    with contextlib.suppress(OSError):
        _restore(root, record, record_dir)
    for directory in reversed(made_dirs):
        with contextlib.suppress(OSError):
            directory.rmdir()
    atomic.remove(record_dir)
    for directory in (history_dir(root), history_dir(root).parent):
        with contextlib.suppress(OSError):
            directory.rmdir()  # made for this record only: empty again


def _restore(root: Path, record: Record, record_dir: Path) -> None:
    for change in reversed(record.changes):
        target = root / change.path
        if change.kind == "dir":
            if change.action == "added":
                with contextlib.suppress(OSError):
                    target.rmdir()  # only when nothing else was put there since
            continue
        copy = record_dir / "before" / change.path
        if change.before == "symlink":
            with atomic.atomic_path(target) as tmp:
                os.symlink(os.readlink(copy), tmp)
        elif change.before == "file":
            with atomic.atomic_path(target, mode=copy.stat().st_mode & 0o7777) as tmp:
                shutil.copyfile(copy, tmp)
        else:
            with contextlib.suppress(FileNotFoundError):
                target.unlink()


def rollback(root: Path) -> Record:
    """Restore the state before the newest applied update; its record says what it undid."""
    applied = [r for r in records(root) if r.status == "applied"]
    if not applied:
        raise MkmediaError(
            f"There is no applied update to roll back (records in {history_dir(root)}).",
            hint="`mkmedia update --status` lists the updates applied since boot.",
        )
    record = applied[-1]
    record_dir = history_dir(root) / f"{record.number:04d}"
    _restore(root, record, record_dir)
    record.status = "rolled back"
    atomic.write_text(record_dir / RECORD, record.to_json())
    return record


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
