"""output stage: write the media and the manifest that lists them."""

from __future__ import annotations

from pathlib import Path

from mkmedia.artifacts import write_manifest
from mkmedia.errors import ConfigError
from mkmedia.log import say
from mkmedia.workflow import Context, step


def output_dir(ctx: Context) -> Path:
    url = ctx.config.get_str("OUTPUT_URL")
    if not url.startswith("file://"):
        raise ConfigError(
            f"OUTPUT_URL {url!r}: only file:// destinations can be written so far.",
            hint="Use file:///DIRECTORY.",
        )
    return Path(url.removeprefix("file://")) / ctx.config.get_str("OUTPUT_PREFIX")


@step("output", 900)
def write_output_manifest(ctx: Context) -> None:
    """Write manifest.json listing every artifact with size and sha256."""
    directory = output_dir(ctx)
    manifest = write_manifest(
        directory / "manifest.json",
        ctx.artifacts,
        {
            "host": ctx.config.system.hostname,
            "workflow": ctx.workflow,
            "output": ctx.config.get_str("OUTPUT"),
            "kernel_version": ctx.config.kernel_version,
        },
    )
    ctx.artifacts.append(manifest)
    for artifact in ctx.artifacts:
        say(f"  {artifact.kind:<9} {artifact.path} ({artifact.size} bytes)")
