"""The build carries UPDATE_ALLOWED_SIGNERS into the media, and refuses a media that could not
check signatures; the settings table knows the update settings."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from mkmedia.settings import BY_NAME
from mkmedia.steps.update import allowed_signers
from rescue_runtime.errors import ConfigError, StepError
from rescue_runtime.update.overlay import ALLOWED_SIGNERS


def context(tree: Path, signers: str) -> Any:
    config = SimpleNamespace(get_str=lambda name: {"UPDATE_ALLOWED_SIGNERS": signers}[name])
    return cast(Any, SimpleNamespace(config=config, tree=tree))


def test_allowed_signers_go_into_the_media(tmp_path: Path) -> None:
    tree = tmp_path / "rootfs"
    keygen = tree / "usr/bin/ssh-keygen"
    keygen.parent.mkdir(parents=True)
    signers = tmp_path / "allowed_signers"
    signers.write_text('admin namespaces="mkmedia-update" ssh-ed25519 AAAA\n')
    with pytest.raises(StepError, match="ssh-keygen is not in the rescue system"):
        allowed_signers(context(tree, str(signers)))
    keygen.write_text("#!/bin/sh\n")
    keygen.chmod(0o755)
    allowed_signers(context(tree, str(signers)))
    assert (tree / ALLOWED_SIGNERS).read_text() == signers.read_text()
    with pytest.raises(ConfigError, match="is not a file"):
        allowed_signers(context(tree, str(tmp_path / "missing")))


def test_update_settings() -> None:
    url = BY_NAME["RECOVERY_UPDATE_URL"]
    assert not url.expand, "${HOSTNAME} expands in the rescue system, not on the build host"
    assert url.rescue and BY_NAME["UPDATE_MAX_MIB"].rescue
    assert not BY_NAME["UPDATE_ALLOWED_SIGNERS"].rescue, "a build-host path"


def test_host_update_only_packs(capsys: pytest.CaptureFixture[str]) -> None:
    from mkmedia import cli

    assert cli.main(["update"]) == 2
    assert "On this host, mkmedia update only packs overlays" in capsys.readouterr().err
