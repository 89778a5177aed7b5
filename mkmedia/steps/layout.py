"""layout stage: capture the host's disk layout, save it, and carry it into the rescue system."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

from mkmedia.session.log import say
from mkmedia.workflow import Context, step
from rescue_runtime.layout import capture, store


@step("layout", 100)
def save_layout(ctx: Context) -> None:
    """Capture what the mounted file systems and swap depend on; save it as JSON and text."""
    layout_dir = Path(ctx.config.get_str("LAYOUT_DIR"))
    header_dir = str(layout_dir) if ctx.config.get_bool("LUKS_HEADER_BACKUP") else None
    layout = capture.capture(
        exclude=ctx.config.get_list("EXCLUDE_RECREATE"),
        autoexclude=ctx.config.get_list("AUTOEXCLUDE_PATH"),
        luks_header_dir=header_dir,
    )
    epoch = ctx.epoch
    if epoch is not None:
        # SOURCE_DATE_EPOCH stands for every time of a reproducible build, this one included
        layout.captured_at = datetime.fromtimestamp(epoch, tz=UTC).isoformat()
    path = store.save(layout, layout_dir)
    ctx.layout_dir = layout_dir
    say(f"  layout saved in {path}")


@step("rootfs", 700)
def copy_layout(ctx: Context) -> None:
    """Carry the saved layout into the rescue system (/var/lib/mkmedia/layout)."""
    source = ctx.layout_dir
    if source is None or not source.is_dir():
        return
    target = ctx.tree / "var/lib/mkmedia/layout"
    shutil.copytree(source, target, dirs_exist_ok=True)
