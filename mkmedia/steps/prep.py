"""prep stage: check what the run needs before anything is written."""

from __future__ import annotations

import json

from mkmedia.session.log import say
from mkmedia.workflow import Context, step


@step("prep", 100)
def record_configuration(ctx: Context) -> None:
    """Write the merged configuration into the build area."""
    path = ctx.build_dir / "config.json"
    document = {
        "system": ctx.config.system.as_dict(),
        "kernel_version": ctx.config.kernel_version,
        "settings": ctx.config.as_json(),
    }
    path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    say(f"  host {ctx.config.system.hostname}, kernel {ctx.config.kernel_version or '(none)'}")
