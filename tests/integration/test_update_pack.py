"""`mkmedia update pack` on this host, then `mkmedia update` of the rescue side into a fake
root: over a path, file:// and http:// (a server on the loopback), signed and unsigned, with
the runtime code; then rolled back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from rescue_runtime import rescueconf
from rescue_runtime.update.overlay import MANIFEST, SIGNATURE
from tests.overlays import CONF, fake_root, keypair, serve, snapshot, trust
from tests.rescue_build import REPO

pytestmark = pytest.mark.integration


def pack(tmp_path: Path, output: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    layout = tmp_path / "layout"
    layout.mkdir(exist_ok=True)
    (layout / "layout.json").write_text('{"disks": ["packed"]}\n')
    config_dir = tmp_path / "etc"
    config_dir.mkdir(exist_ok=True)
    argv = [sys.executable, "-m", "mkmedia", "update", "pack", "-c", str(config_dir)]
    argv += ["--set", f"LAYOUT_DIR={layout}", "--set", "UNATTENDED_ACTION=poweroff"]
    argv += ["--set", "RECOVERY_UPDATE_URL=http://server/${HOSTNAME}.tar.gz"]
    argv += ["-o", str(output), *extra]
    env = {**os.environ, "SOURCE_DATE_EPOCH": "1700000000"}
    return subprocess.run(argv, capture_output=True, text=True, cwd=REPO, env=env, check=False)


def rescue(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rescue_runtime", "update", *argv],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )


def test_pack_then_apply_over_http_and_roll_back(tmp_path: Path) -> None:
    key, public = keypair(tmp_path, "admin")
    overlay = tmp_path / "served" / "db7.tar.gz"
    overlay.parent.mkdir()
    packed = pack(tmp_path, overlay, "--host", "db7", "--include-runtime", "--sign-key", str(key))
    assert packed.returncode == 0, packed.stderr
    assert f"Wrote the overlay {overlay} for host db7" in packed.stderr + packed.stdout
    with tarfile.open(overlay) as tar:
        names = tar.getnames()
        manifest = json.loads(tar.extractfile(MANIFEST).read())  # type: ignore[union-attr]
    assert names[:2] == [MANIFEST, SIGNATURE] or (MANIFEST in names and SIGNATURE in names)
    purposes = {f["path"]: f["purpose"] for f in manifest["files"]}
    assert purposes[CONF] == "configuration"
    assert purposes["var/lib/mkmedia/layout/layout.json"] == "disk layout"
    assert purposes["var/lib/mkmedia/runtime/rescue_runtime/update/overlay.py"] == "runtime code"
    assert manifest["host"] == "db7"
    # reproducible: the same inputs give the same bytes
    again = tmp_path / "again.tar.gz"
    assert pack(tmp_path, again, "--host", "db7", "--include-runtime").returncode == 0
    unsigned = pack(tmp_path, tmp_path / "unsigned.tar.gz", "--host", "db7", "--include-runtime")
    assert unsigned.returncode == 0
    assert again.read_bytes() == (tmp_path / "unsigned.tar.gz").read_bytes()

    root = fake_root(tmp_path / "root")
    trust(root, "admin@example.com", public)
    before = snapshot(root)
    refused = rescue(str(tmp_path / "unsigned.tar.gz"), "--root", str(root))
    assert refused.returncode == 1 and "it is not signed" in refused.stderr
    assert snapshot(root) == before

    with serve(overlay.parent) as port:
        missing = rescue(f"http://127.0.0.1:{port}/nobody.tar.gz", "--root", str(root))
        assert missing.returncode == 1 and "the server answered 404" in missing.stderr
        assert snapshot(root) == before
        applied = rescue(f"http://127.0.0.1:{port}/db7.tar.gz", "--root", str(root))
    assert applied.returncode == 0, applied.stderr
    assert "signed by admin@example.com" in applied.stdout
    assert "read again: host db7" in applied.stdout
    # runtime code changed: the command ran again, on the new code, and reported the status
    assert "runtime code from " in applied.stdout, applied.stdout
    assert "   1  applied      " in applied.stdout and "db7.tar.gz" in applied.stdout
    config = rescueconf.load(root / CONF)
    assert config.hostname == "db7" and config.unattended_action == "poweroff"
    # the template stays a template: it expands in the rescue system, not on the build host
    assert config.settings["RECOVERY_UPDATE_URL"] == "http://server/${HOSTNAME}.tar.gz"
    assert "packed" in (root / "var/lib/mkmedia/layout/layout.json").read_text()
    assert (root / "var/lib/mkmedia/runtime/rescue_runtime/update/command.py").is_file()

    rolled = rescue("--rollback", "--root", str(root))
    assert rolled.returncode == 0, rolled.stderr
    after = {k: v for k, v in snapshot(root).items() if not k.startswith("var/lib/mkmedia/update")}
    assert after == {k: v for k, v in before.items() if k in after} and set(after) <= set(before)
    assert rescueconf.load(root / CONF).hostname == "golden"


def test_pack_refuses_a_bad_host_name_and_a_missing_key(tmp_path: Path) -> None:
    bad = pack(tmp_path, tmp_path / "x.tar.gz", "--host", "../etc")
    assert bad.returncode == 2 and "is not a host name" in bad.stderr + bad.stdout
    nokey = pack(tmp_path, tmp_path / "y.tar.gz", "--sign-key", str(tmp_path / "nokey"))
    assert nokey.returncode == 6 and "does not exist" in nokey.stderr + nokey.stdout
    assert not (tmp_path / "x.tar.gz").exists() and not (tmp_path / "y.tar.gz").exists()
