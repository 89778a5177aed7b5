"""Placeholder of recover's finalize stage (the finalize branch replaces this file).

It keeps the interface the recover workflow calls; finalize() refuses, so that recover is
not switched on before its boot-loader step exists.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rescue_runtime.errors import MkmediaError
from rescue_runtime.layout.model import Layout


@dataclass
class FinalizeRequest:
    layout: Layout
    target: Path
    key_dir: Path
    logs: list[Path]
    ask: Callable[[str, str], str] | None
    changed: list[str]


def finalize(request: FinalizeRequest) -> list[str]:
    raise MkmediaError("The finalize stage is not in this version yet.")


def finalize_programs(layout: Layout) -> list[str]:
    return []


def luks_key_problems(layout: Layout, crypttab_text: str | None) -> list[str]:
    return []
