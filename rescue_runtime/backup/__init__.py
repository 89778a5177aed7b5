"""Backup methods, registered by their BACKUP name (one method per module).

The registry decides what a configuration may name: validation accepts a BACKUP value only
when a method is registered for it, and `mkmedia settings` lists the registered ones. A
method's module is imported only when it is used (mkosi's pattern), so the rescue system
carries what it needs and nothing imports a method it does not run.
"""

from __future__ import annotations

from rescue_runtime.backup.base import BackupMethod
from rescue_runtime.registry import LazyRegistry

# BACKUP name -> module that defines `METHOD`, a BackupMethod subclass.
_METHODS: dict[str, str] = {
    "NONE": "rescue_runtime.backup.none",
    "NETFS": "rescue_runtime.backup.netfs",
}


_REGISTRY: LazyRegistry[BackupMethod] = LazyRegistry(
    _METHODS,
    "METHOD",
    lambda name: f"BACKUP={name!r} is not implemented in this version of mkmedia.",
)


def method_names() -> tuple[str, ...]:
    """The BACKUP values this version implements, in the order `mkmedia settings` shows them."""
    return _REGISTRY.names()


def method_class(name: str) -> type[BackupMethod]:
    """The class implementing BACKUP=name; ConfigError names the ones that exist."""
    return _REGISTRY.get(name)
