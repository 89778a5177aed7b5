"""Shared fixtures. Expensive artifacts (rescue tree, initrd, ISO) are session-scoped."""

from __future__ import annotations

from pathlib import Path

import pytest

from mkmedia.sysinfo import SystemInfo

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def fake_system() -> SystemInfo:
    return SystemInfo(
        hostname="web01",
        arch="x86_64",
        os="GNU/Linux",
        os_vendor="debian",
        os_version="12",
        os_codename="bookworm",
        os_pretty_name="Debian GNU/Linux 12 (bookworm)",
        firmware="UEFI",
        running_kernel="6.1.0-9-amd64",
        kernels=["6.1.0-9-amd64", "6.1.0-10-amd64"],
    )


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty mkmedia data directory (recipes/...) the test fills in."""
    root = tmp_path / "data"
    (root / "recipes" / "arch").mkdir(parents=True)
    (root / "recipes" / "os" / "debian").mkdir(parents=True)
    monkeypatch.setenv("MKMEDIA_DATA_DIR", str(root))
    return root


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    path = tmp_path / "etc-mkmedia"
    path.mkdir()
    return path
