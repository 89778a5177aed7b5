"""What this version of the rescue system can do, in one place.

The banner, /init (its kernel options), the rescue command's help and the builder (its
validation and boot menus) all ask here, so the change that makes recover, mountonly or update
real switches it on in one line and everything that shows or accepts it follows.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Feature:
    name: str  # the rescue command: `mkmedia NAME`
    summary: str  # its line in the banner
    ready: bool  # implemented in this version

    @property
    def missing(self) -> str:
        """One sentence saying this feature is not there yet (for refusals and the console)."""
        return f"mkmedia {self.name} is not implemented in this version of mkmedia yet"


RECOVER = Feature("recover", "recover this machine (asks before touching disks)", ready=False)
MOUNTONLY = Feature(
    "mountonly", "open and mount the saved layout under /mnt/local for repair", ready=True
)
UMOUNT = Feature("umount", "take down what mountonly brought up", ready=True)
LAYOUTONLY = Feature(
    "layoutonly", "recreate the saved disk layout under /mnt/local (no restore)", ready=True
)
FINALIZEONLY = Feature(
    "finalizeonly", "reinstall boot loader and keys of the system under /mnt/local", ready=True
)
RESTOREONLY = Feature(
    "restoreonly", "restore the backup into the system mounted under /mnt/local", ready=True
)
UPDATE = Feature("update", "apply a configuration/runtime overlay to this system", ready=True)
DUMP = Feature("dump", "show this rescue system's settings", ready=True)
LAYOUT = Feature("layout", "capture and show this machine's disk layout", ready=True)
CHECKLAYOUT = Feature("checklayout", "compare the disks with the saved layout", ready=True)

# The rescue commands in the order the banner lists them.
COMMANDS: tuple[Feature, ...] = (
    RECOVER,
    LAYOUTONLY,
    RESTOREONLY,
    MOUNTONLY,
    UMOUNT,
    FINALIZEONLY,
    DUMP,
    LAYOUT,
    CHECKLAYOUT,
    UPDATE,
)


def ready_commands() -> tuple[Feature, ...]:
    return tuple(feature for feature in COMMANDS if feature.ready)
