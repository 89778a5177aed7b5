"""`mkmedia update`: overlays for a running rescue system (configuration, layout, runtime code).

overlay.py is the format and its checks (shared with `mkmedia update pack` on the host),
signature.py the `ssh-keygen -Y verify` check, source.py where an overlay comes from
(RECOVERY_UPDATE_URL's templates), apply.py the atomic swap, its record and rollback,
command.py the rescue command and `apply_configured_update` for recover.
"""

from rescue_runtime.update.command import apply_configured_update

__all__ = ["apply_configured_update"]
