"""rootfs stage: what the rescue system needs to judge overlays (`mkmedia update`)."""

from __future__ import annotations

from pathlib import Path

from mkmedia.rootpaths import RootPaths
from mkmedia.session.log import say
from mkmedia.workflow import Context, step
from rescue_runtime import atomic
from rescue_runtime.errors import ConfigError, StepError
from rescue_runtime.run import SYSTEM_PATH
from rescue_runtime.update.overlay import ALLOWED_SIGNERS


@step("rootfs", 810, when=lambda c: bool(c.get_str("UPDATE_ALLOWED_SIGNERS")))
def allowed_signers(ctx: Context) -> None:
    """Carry UPDATE_ALLOWED_SIGNERS into the media: overlays must then be signed by its keys."""
    source = Path(ctx.config.get_str("UPDATE_ALLOWED_SIGNERS"))
    if not source.is_file():
        raise ConfigError(
            f"UPDATE_ALLOWED_SIGNERS={source} is not a file.",
            hint="Give an ssh-keygen allowed-signers file: lines of 'PRINCIPAL KEYTYPE KEY' "
            '(with namespaces="mkmedia-update" to limit the keys to overlays).',
        )
    if RootPaths(ctx.tree).which("ssh-keygen", SYSTEM_PATH) is None:
        raise StepError(
            "UPDATE_ALLOWED_SIGNERS is set, but ssh-keygen is not in the rescue system, which "
            "needs it to check the overlays' signatures.",
            hint="Add ssh-keygen to PROGS (the default recipe has it).",
        )
    atomic.copy_file(source, ctx.tree / ALLOWED_SIGNERS, mode=0o644, durable=False)
    say(f"  overlays must be signed by a key of {source}")
