"""`mkmedia update SOURCE | --rollback | --status` in the rescue system, and the update that
recover (and /init, for `mkmedia.update=URL`) applies from RECOVERY_UPDATE_URL.

A failed download or check changes nothing. After an update the configuration is read again;
when the runtime code changed, the command runs again as a new process, so the new code runs
(rescue_runtime/__init__.py puts the runtime overlay first on the package's path).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from rescue_runtime import rescueconf
from rescue_runtime.errors import EXIT_OK, UsageError
from rescue_runtime.update.apply import Record, apply_overlay, records, rollback
from rescue_runtime.update.overlay import ALLOWED_SIGNERS, DEFAULT_MAX_BYTES, read_overlay
from rescue_runtime.update.signature import verify
from rescue_runtime.update.source import expand_template, fetch, template_values

# Set in the environment of a command that re-executed itself after an update changed the
# runtime code, so the new process does not apply the same update again.
REEXEC_MARK = "MKMEDIA_UPDATE_REEXEC"
SETTING = "RECOVERY_UPDATE_URL"


def max_bytes(config: rescueconf.RescueConfig) -> int:
    mib = config.settings.get("UPDATE_MAX_MIB")
    return int(mib) * 1024 * 1024 if isinstance(mib, int) and mib > 0 else DEFAULT_MAX_BYTES


def update(source: str, *, root: Path = Path("/"), limit: int = DEFAULT_MAX_BYTES) -> Record:
    """Fetch, check (signature too, when the media asks for one), stage and swap in."""
    with tempfile.TemporaryDirectory(prefix="mkmedia-update-") as work:
        archive = Path(work) / "overlay"
        fetch(source, archive, max_bytes=limit)
        sha256 = hashlib.sha256(archive.read_bytes()).hexdigest()
        overlay = read_overlay(archive, source, max_bytes=limit)
        signer = verify(overlay, root / ALLOWED_SIGNERS)
        return apply_overlay(root, overlay, sha256, signer)


def configured_url(config: rescueconf.RescueConfig, sys_dir: Path = Path("/sys")) -> str | None:
    """RECOVERY_UPDATE_URL with its templates expanded, or None when it is not set."""
    value = config.settings.get(SETTING)
    if not isinstance(value, str) or not value.strip():
        return None
    return expand_template(value.strip(), template_values(sys_dir))


def apply_configured_update(
    config: rescueconf.RescueConfig, *, root: Path = Path("/")
) -> str | None:
    """Apply RECOVERY_UPDATE_URL's overlay (recover calls this at its start): what changed,
    or None when no URL is set. The caller reads the configuration again afterwards; when
    the runtime code changed this does not return: the command runs again with the new code."""
    if os.environ.get(REEXEC_MARK):
        return None  # the process before this one applied it
    url = configured_url(config)
    if url is None:
        return None
    record = update(url, root=root, limit=max_bytes(config))
    if record.runtime_changed:
        print(record.summary(), flush=True)
        reexec([*sys.argv[1:]])
    return record.summary()


def reexec(arguments: Sequence[str]) -> None:
    """Replace this process by `mkmedia ARGUMENTS` on the (updated) runtime code."""
    os.environ[REEXEC_MARK] = "1"
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", "rescue_runtime", *arguments])


def add_update_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    parents: list[argparse.ArgumentParser],
) -> None:
    parser = sub.add_parser(
        "update",
        help="apply a configuration/runtime overlay to this rescue system (or roll it back)",
        parents=parents,
        description="Apply an overlay made by `mkmedia update pack` on the host. SOURCE is "
        "its path or a file://, http:// or https:// URL; without SOURCE, RECOVERY_UPDATE_URL "
        "(templates ${HOSTNAME}, ${MAC}, ${SERIAL}).",
    )
    parser.add_argument("source", nargs="?", metavar="SOURCE", help="overlay path or URL")
    what = parser.add_mutually_exclusive_group()
    what.add_argument(
        "--rollback", action="store_true", help="restore the state before the newest update"
    )
    what.add_argument("--status", action="store_true", help="list the updates applied")
    parser.add_argument(
        "--root", type=Path, default=Path("/"), help="the system to update (default /; tests)"
    )


def cmd_update(args: argparse.Namespace) -> int:
    root: Path = args.root
    conf_path = root / rescueconf.RESCUE_CONF.relative_to("/")
    if args.status:
        return _status(root)
    if args.rollback:
        if args.source:
            raise UsageError("mkmedia update --rollback takes no SOURCE.")
        record = rollback(root)
        print(f"rolled back update {record.number} from {record.source}:")
        for change in record.changes:
            if change.kind != "dir":
                undone = "restored" if change.before else "removed"
                print(f"  {undone:<8} /{change.path}")
        _reread(conf_path)
        return EXIT_OK
    config = rescueconf.load(conf_path)
    source = args.source or configured_url(config)
    if not source:
        raise UsageError(
            "mkmedia update needs a SOURCE: this rescue system has no RECOVERY_UPDATE_URL.",
            hint="Give the overlay's path or URL: mkmedia update http://SERVER/HOST.tar.gz",
        )
    record = update(source, root=root, limit=max_bytes(config))
    print(record.summary() if record.changes else f"{source}: nothing to change")
    if record.changes:
        _reread(conf_path)
    if record.runtime_changed and not os.environ.get(REEXEC_MARK):
        reexec(["update", "--status", "--root", str(root)])  # the new code reports
    return EXIT_OK


def _reread(conf_path: Path) -> None:
    """Read the configuration again: a broken one must show now, not in the next command."""
    config = rescueconf.load(conf_path)
    print(f"configuration {conf_path} read again: host {config.hostname}")


def _status(root: Path) -> int:
    import rescue_runtime

    found = records(root)
    if not found:
        print("no updates applied")
    for record in found:
        print(f"{record.number:4d}  {record.status:<11}  {record.applied_at}  {record.source}")
    print(f"runtime code from {next(iter(rescue_runtime.__path__))}")
    return EXIT_OK
