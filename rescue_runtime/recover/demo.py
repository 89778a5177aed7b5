"""`mkmedia recover --demo DIR`: restore the backup into a directory and touch no disk.

In the rescue system the backup is found as recover finds it (backup/medium.py: the rescue
medium for iso://), its manifest is checked (every volume's size and sha256) and it is
restored into DIR. A backup spread over several media reaches the further ones as recover
does (backup/spanmedia.py): unattended, all must be in the drives (a missing one is named
and nothing is restored); interactive, each is asked for in turn. The checks on the method
and on DIR are shared with the host's `mkmedia recover --demo` (mkmedia/recoverdemo.py).
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from rescue_runtime import rescueconf
from rescue_runtime.backup import restore as restoring
from rescue_runtime.backup import spanmedia
from rescue_runtime.backup.medium import located_backup
from rescue_runtime.backup.netfs import Netfs
from rescue_runtime.backup.progress import ProgressFunc
from rescue_runtime.errors import EXIT_OK, ConfigError
from rescue_runtime.recover import backupkey
from rescue_runtime.recover.ask import Asker
from rescue_runtime.rescueconf import RescueConfig


def check_demo_method(backup: str) -> None:
    if backup != "NETFS":
        raise ConfigError(
            f"recover --demo restores a BACKUP=NETFS backup; this configuration has "
            f"BACKUP={backup}.",
            hint="Set BACKUP=NETFS and BACKUP_URL to where the backup is.",
        )


def check_demo_target(target: Path) -> None:
    resolved = target.resolve()
    if resolved == Path("/"):
        raise ConfigError(
            "recover --demo restores into a directory; / is the running system.",
            hint="Name an empty directory, e.g. /var/tmp/restore-demo.",
        )
    if resolved.exists() and (not resolved.is_dir() or any(resolved.iterdir())):
        raise ConfigError(
            f"recover --demo needs an empty directory (or a new one); {target} is not.",
            hint="Name an empty or a new directory.",
        )


@contextlib.contextmanager
def demo_target(target: Path) -> Iterator[Path]:
    """`target` checked and created; when the restore refuses before writing into it (a
    damaged backup), a directory made here goes again: a refusal leaves nothing behind."""
    check_demo_target(target)
    created = not target.exists()
    target.mkdir(parents=True, exist_ok=True)
    try:
        yield target
    except BaseException:
        if created:
            with contextlib.suppress(OSError):
                target.rmdir()  # only when still empty
        raise


def demo_restore(
    config: RescueConfig,
    target: Path,
    *,
    progress: ProgressFunc | None = None,
    ask: Callable[[str, str], str] | None = None,
) -> tuple[dict[str, object], set[str]]:
    """Restore this rescue system's backup into `target` (new or empty); returns restore's
    result and the devices the backup and the rescue medium (and further media) sit on.
    `ask`: the operator, who inserts the further media of a spanned backup (None: they
    must all be in the drives)."""
    check_demo_method(config.backup)
    check_demo_target(target)
    with (
        tempfile.TemporaryDirectory(prefix="mkmedia-demo.", ignore_cleanup_errors=True) as work,
        located_backup(config, Path(work)) as found,
        demo_target(target),
    ):
        key = backupkey.configured(config.settings)
        # the manifest (sizes, sha256, the key) and the further media, before any extraction
        manifest = restoring.check(found.directory, key_file=key)
        devices = set(found.devices)
        further = spanmedia.further_media(
            found.directory, manifest, Path(work), ask=ask, protected=devices
        )
        finder = further.finder if further is not None else None
        result = Netfs.restore(
            found.directory,
            target,
            progress=progress,
            key_file=key,
            finder=finder,
            check_sha256=False,  # checked just above
        )
        return result, devices | (finder.devices if finder is not None else set())


def cmd_demo(args: argparse.Namespace) -> int:
    target = Path(args.demo)
    ask = None if args.unattended else Asker(unattended=False)
    result, devices = demo_restore(rescueconf.load(), target, ask=ask)
    media = ", ".join(sorted(devices)) or "none"
    print(f"Backup and rescue medium devices (never a recover target): {media}")
    print(f"Restored {result['files']} files into {target}; no disk was touched.")
    return EXIT_OK
