"""The kernel the tests build media with and boot: found the way the product finds it.

`KERNEL: auto` goes through mkmedia's own chooser, so the tests use whatever kernel
`linux-image-amd64` installed here, never a version written in a test.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from mkmedia.emit.grub import kernel_is_signed
from mkmedia.kernel.choice import Kernel, choose_kernel
from rescue_runtime.errors import MissingError

# Debian's signing certificate names its CA; shim (signed by Microsoft) trusts that CA.
_DEBIAN_SIGNER = b"Debian Secure Boot CA"
# An Authenticode signature is the certificate table appended at the end of the PE file.
_SIGNATURE_TAIL = 64 << 10


@functools.cache
def _chosen() -> Kernel:
    return choose_kernel("auto")


def host_kernel() -> Kernel:
    """The kernel `KERNEL: auto` picks on this machine; skips (a failure under CI=true) when
    there is none."""
    try:
        return _chosen()
    except MissingError as exc:
        pytest.skip(f"no kernel for rescue media on this machine: {exc}")


def debian_signed(image: Path) -> bool:
    """Whether a kernel image carries an Authenticode signature by Debian's Secure Boot CA."""
    if not kernel_is_signed(image):
        return False
    with open(image, "rb") as stream:
        size = stream.seek(0, 2)
        stream.seek(max(0, size - _SIGNATURE_TAIL))
        return _DEBIAN_SIGNER in stream.read()


def secure_boot_kernel() -> Kernel:
    """The chosen kernel, which Secure Boot tests need signed by Debian (the linux-image-amd64
    image in /boot is); skips (a failure under CI=true) when it is not."""
    kernel = host_kernel()
    if not debian_signed(kernel.image):
        pytest.skip(
            f"the kernel KERNEL=auto chooses ({kernel.image}) is not signed by Debian, so shim "
            "would refuse it under Secure Boot; install linux-image-amd64"
        )
    return kernel
