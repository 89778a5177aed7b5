"""An overlay's signature: checked with `ssh-keygen -Y` against the media's allowed signers.

When the media carries an allowed-signers file (/etc/mkmedia/update/allowed_signers, built
in from UPDATE_ALLOWED_SIGNERS), every overlay must be signed by a key listed there; without
the file, signatures are not asked for (and one that is present is not checked).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from rescue_runtime.errors import MissingError
from rescue_runtime.run import run, which
from rescue_runtime.update.overlay import NAMESPACE, Overlay, refused

SIGN_HINT = (
    "Sign it on the host: `mkmedia update pack --sign-key KEY ...` with a key whose public "
    "half is in the media's allowed-signers file (UPDATE_ALLOWED_SIGNERS)."
)


def verify(overlay: Overlay, allowed_signers: Path) -> str | None:
    """The principal that signed the overlay, or None when no signers file asks for one."""
    if not allowed_signers.is_file():
        return None
    source = overlay.source
    if overlay.signature is None:
        raise refused(
            source,
            "it is not signed, and this rescue system accepts only signed overlays",
            SIGN_HINT,
        )
    if which("ssh-keygen") is None:
        raise MissingError(
            "ssh-keygen is not in this rescue system, so the overlay's signature cannot be "
            f"checked against {allowed_signers}; nothing was changed.",
            hint="Build the media with ssh-keygen in PROGS (the default recipe has it).",
        )
    with tempfile.TemporaryDirectory(prefix="mkmedia-update-sig-") as work:
        sig = Path(work) / "manifest.sig"
        sig.write_bytes(overlay.signature)
        found = run(
            ["ssh-keygen", "-Y", "find-principals", "-s", sig, "-f", allowed_signers],
            check=False,
        )
        principals = found.stdout.split()
        if not found.ok or not principals:
            raise refused(
                source,
                f"it is signed by a key that is not in {allowed_signers} (an unknown key)",
                SIGN_HINT,
            )
        principal = principals[0]
        checked = run(
            [
                "ssh-keygen",
                "-Y",
                "verify",
                "-f",
                allowed_signers,
                "-I",
                principal,
                "-n",
                NAMESPACE,
                "-s",
                sig,
            ],
            input=overlay.manifest_bytes,
            check=False,
        )
        if not checked.ok:
            detail = (checked.stderr or checked.stdout).strip().splitlines()
            raise refused(
                source,
                f"its signature by {principal} does not match its manifest (changed after "
                f"signing?): {detail[-1] if detail else 'ssh-keygen -Y verify failed'}",
                SIGN_HINT,
            )
    return principal
