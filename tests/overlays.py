"""Overlays for the update tests: fake rescue roots, keys, and hand-made (bad) archives."""

from __future__ import annotations

import contextlib
import functools
import http.server
import io
import json
import os
import subprocess
import tarfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from rescue_runtime.rescueconf import RescueConfig
from rescue_runtime.update.overlay import ALLOWED_SIGNERS, FORMAT_VERSION, MANIFEST, SIGNATURE
from rescue_runtime.update.overlay import manifest_entry as entry

CONF = "etc/mkmedia/rescue.json"


def rescue_json(hostname: str, **settings: object) -> bytes:
    return RescueConfig(hostname=hostname, settings=dict(settings)).to_json().encode()


def fake_root(root: Path, hostname: str = "golden", **settings: object) -> Path:
    """A rescue system's root as the media has it: rescue.json and a saved layout."""
    (root / "etc/mkmedia").mkdir(parents=True)
    (root / CONF).write_bytes(rescue_json(hostname, **settings))
    (root / "var/lib/mkmedia/layout").mkdir(parents=True)
    (root / "var/lib/mkmedia/layout/layout.json").write_text('{"disks": []}\n')
    return root


def keypair(directory: Path, name: str) -> tuple[Path, str]:
    """A fresh ed25519 key: the private key's path and the public key's line."""
    key = directory / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)], check=True
    )
    return key, (directory / f"{name}.pub").read_text().strip()


def trust(root: Path, principal: str, public: str) -> None:
    """Make `root` accept only overlays signed by `public`."""
    path = root / ALLOWED_SIGNERS
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'{principal} namespaces="mkmedia-update" {public}\n')


def manifest_for(files: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    listed = [entry(path, data) for path, data in sorted(files.items())]
    listed += [entry(path, target=target) for path, target in sorted((links or {}).items())]
    document = {"format_version": FORMAT_VERSION, "host": "test", "files": listed}
    return json.dumps(document, indent=2).encode()


def sign(manifest: bytes, key: Path, work: Path) -> bytes:
    target = work / "manifest-to-sign"
    target.write_bytes(manifest)
    subprocess.run(
        ["ssh-keygen", "-q", "-Y", "sign", "-f", str(key), "-n", "mkmedia-update", str(target)],
        check=True,
    )
    signature = (work / "manifest-to-sign.sig").read_bytes()
    os.unlink(work / "manifest-to-sign.sig")
    return signature


def member(
    name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE, **attrs: object
) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    info.mode = 0o644
    for key, value in attrs.items():
        setattr(info, key, value)
    return info, data


def write_archive(
    path: Path,
    files: dict[str, bytes],
    *,
    extra: Sequence[tuple[tarfile.TarInfo, bytes]] = (),
    manifest: bytes | None = None,
    signature: bytes | None = None,
    contents: dict[str, bytes] | None = None,
) -> Path:
    """A tar.gz overlay: the manifest of `files` (or `manifest`), the signature when given,
    then `contents` (default: `files`) as regular members, then `extra` members as they are."""
    members = [member(MANIFEST, manifest if manifest is not None else manifest_for(files))]
    if signature is not None:
        members.append(member(SIGNATURE, signature))
    members += [member(name, data) for name, data in sorted((contents or files).items())]
    members += list(extra)
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return path


def snapshot(root: Path) -> dict[str, object]:
    """Everything under root: files by content and mode, links by target, directories."""
    seen: dict[str, object] = {}
    for path in sorted(root.rglob("*")):
        name = str(path.relative_to(root))
        if path.is_symlink():
            seen[name] = ("link", os.readlink(path))
        elif path.is_dir():
            seen[name] = "dir"
        else:
            seen[name] = (path.read_bytes(), path.stat().st_mode)
    return seen


@contextlib.contextmanager
def serve(directory: Path) -> Iterator[int]:
    """An HTTP server of `directory` on the loopback (a QEMU guest reaches it at 10.0.2.2);
    yields its port, a free one."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# Every path the test servers were asked for, in order (a guest's expanded templates show here).
REQUESTED: list[str] = []


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        REQUESTED.append(self.path)
