"""Backup methods, registered by their BACKUP name (one method per module).

The registry decides what a configuration may name: validation accepts a BACKUP value only
when a method is registered for it, and `mkmedia settings` lists the registered ones. A
method's module is imported only when it is used (mkosi's pattern), so the rescue system
carries what it needs and nothing imports a method it does not run.
"""

from __future__ import annotations

import importlib

from rescue_runtime.backup.base import BackupMethod
from rescue_runtime.errors import ConfigError

# BACKUP name -> module that defines `METHOD`, a BackupMethod subclass.
_METHODS: dict[str, str] = {
    "NONE": "rescue_runtime.backup.none",
    "NETFS": "rescue_runtime.backup.netfs",
}


def method_names() -> tuple[str, ...]:
    """The BACKUP values this version implements, in the order `mkmedia settings` shows them."""
    return tuple(_METHODS)


def method_class(name: str) -> type[BackupMethod]:
    """The class implementing BACKUP=name; ConfigError names the ones that exist."""
    module_name = _METHODS.get(name.upper())
    if module_name is None:
        raise ConfigError(
            f"BACKUP={name!r} is not implemented in this version of mkmedia.",
            hint=f"Use one of: {', '.join(method_names())}.",
        )
    method: type[BackupMethod] = importlib.import_module(module_name).METHOD
    return method
