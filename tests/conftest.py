"""Shared fixtures. Expensive artifacts (rescue tree, initrd, ISO) are session-scoped."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mkmedia.host.sysinfo import SystemInfo
from mkmedia.kernel.choice import Kernel, KernelChoice
from rescue_runtime.errors import MissingError
from tests import hostkernel

# Under CI=true a skip fails unless the test opted in (tests/ciskip.py); tests/parallel.py
# groups and orders the tests for pytest-xdist (`make test` runs two workers).
pytest_plugins = ["tests.ciskip", "tests.parallel"]

REPO = Path(__file__).resolve().parent.parent
# The package's own data (recipes, templates), where the product finds it without an override.
SHIPPED_DATA = REPO / "mkmedia" / "data"


@pytest.fixture(scope="session", autouse=True)
def own_lock_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """mkmedia's lock (MKMEDIA_LOCK_FILE, default /run/lock/mkmedia.lock) is machine-wide:
    each pytest process (an xdist worker) points it at a file of its own, so mkmedia runs of
    two workers (or of another checkout's tests) never refuse or wait for each other."""
    path = tmp_path_factory.getbasetemp() / "mkmedia.lock"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MKMEDIA_LOCK_FILE", str(path))
        yield path


@pytest.fixture(scope="session")
def host_kernel() -> Kernel:
    """The kernel KERNEL=auto chooses on this machine (the product's own chooser)."""
    return hostkernel.host_kernel()


@pytest.fixture(scope="session")
def secure_boot_kernel() -> Kernel:
    """The chosen kernel, checked to carry Debian's Secure Boot signature."""
    return hostkernel.secure_boot_kernel()


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
