"""SOURCE_DATE_EPOCH: the one time a reproducible build may use."""

from __future__ import annotations

import os
import time


def source_date_epoch() -> int | None:
    """The environment's SOURCE_DATE_EPOCH as seconds, or None when unset or not a number."""
    value = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    return int(value) if value.isdigit() else None


def resolve_epoch(given: int | None) -> int:
    """The time a medium's files carry: `given`, else $SOURCE_DATE_EPOCH, else now."""
    if given is not None:
        return int(given)
    from_env = source_date_epoch()
    return from_env if from_env is not None else int(time.time())
