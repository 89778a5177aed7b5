"""Shared fixtures. Expensive artifacts (rescue tree, initrd, ISO) are session-scoped."""

from __future__ import annotations

from pathlib import Path

import pytest

from mkmedia.host.sysinfo import SystemInfo
from mkmedia.kernel.choice import Kernel, KernelChoice
from rescue_runtime.errors import MissingError

REPO = Path(__file__).resolve().parent.parent
# The package's own data (recipes, templates), where the product finds it without an override.
SHIPPED_DATA = REPO / "mkmedia" / "data"


@pytest.fixture
def fake_system(monkeypatch: pytest.MonkeyPatch) -> SystemInfo:
    """A made-up host; KERNEL=auto is answered from its kernel list, not this machine's /boot."""
    system = SystemInfo(
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
    monkeypatch.setattr("mkmedia.config.choose_once", fake_kernel_chooser(system))
    return system


def fake_kernel_chooser(system: SystemInfo):  # type: ignore[no-untyped-def]
    """KERNEL=auto on the fake system: the running kernel if installed, else the newest."""

    def version(spec: str) -> str:
        if spec != "auto":
            return spec.rsplit("/", 1)[-1].removeprefix("vmlinuz-")
        if system.running_kernel in system.kernels:
            return system.running_kernel
        return system.kernels[-1] if system.kernels else ""

    def choose(spec: str) -> KernelChoice:
        found = version(spec)
        if not found:
            return KernelChoice(None, MissingError("The fake system has no kernel."))
        return KernelChoice(Kernel(found, Path("/boot") / f"vmlinuz-{found}"))

    return choose


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A mkmedia data directory the test fills in: an empty default recipe, the shipped boot
    loader templates."""
    root = tmp_path / "data"
    (root / "recipes" / "arch").mkdir(parents=True)
    (root / "recipes" / "os" / "debian").mkdir(parents=True)
    (root / "recipes" / "default.yaml").write_text("")
    (root / "bootloaders").symlink_to(SHIPPED_DATA / "bootloaders")
    monkeypatch.setenv("MKMEDIA_DATA_DIR", str(root))
    return root


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    path = tmp_path / "etc-mkmedia"
    path.mkdir()
    return path
