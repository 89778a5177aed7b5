"""SOURCE_DATE_EPOCH: the one time a reproducible build may use."""

from __future__ import annotations

import os


def source_date_epoch() -> int | None:
    """The environment's SOURCE_DATE_EPOCH as seconds, or None when unset or not a number."""
    value = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    return int(value) if value.isdigit() else None
