"""A registry of named kinds whose modules are imported only when used (mkosi's pattern).

Each name maps to the module that defines the kind's class under one attribute name; the
registry decides what a configuration may name and lists the names in their order. The
emitters (OUTPUT) and the backup methods (BACKUP) are such registries.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Generic, TypeVar

from rescue_runtime.errors import ConfigError

T = TypeVar("T")


class LazyRegistry(Generic[T]):
    """`modules` maps a name (upper case) to the module defining the class as `attribute`;
    `unknown(name)` is the first sentence of the ConfigError for a name not in it."""

    def __init__(
        self, modules: dict[str, str], attribute: str, unknown: Callable[[str], str]
    ) -> None:
        self.modules = modules
        self.attribute = attribute
        self.unknown = unknown

    def names(self) -> tuple[str, ...]:
        return tuple(self.modules)

    def get(self, name: str) -> type[T]:
        """The class registered under `name` (any case); ConfigError names the ones that exist."""
        module_name = self.modules.get(name.upper())
        if module_name is None:
            raise ConfigError(self.unknown(name), hint=f"Use one of: {', '.join(self.names())}.")
        found: type[T] = getattr(importlib.import_module(module_name), self.attribute)
        return found
