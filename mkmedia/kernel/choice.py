"""Find the kernels installed on this machine and choose the one the rescue media boots.

The rescue media does not have to boot the running kernel: on a VM host or a freshly upgraded
server the running kernel may have no image in /boot. `choose_kernel` picks the kernel from a
recipe's KERNEL setting (`auto`, a version string, or a path to an image) and says why.
"""

from __future__ import annotations

import logging
import os
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

from rescue_runtime.errors import MissingError

log = logging.getLogger("mkmedia.kernel")

# File name prefixes of kernel images in /boot (Debian/Ubuntu use vmlinuz-VERSION).
IMAGE_PREFIXES = ("vmlinuz-", "vmlinux-", "bzImage-", "kernel-")
# Backup copies some tools leave beside the images; they are never candidates.
_IGNORED_SUFFIXES = (".old", ".bak", ".dpkg-tmp", ".dpkg-new", ".efi.signed")

INSTALL_HINT = (
    "Install a kernel package (on Debian: `apt-get install linux-image-amd64`), "
    "or set KERNEL to the path of a kernel image."
)


@dataclass(frozen=True)
class Kernel:
    """One installed kernel: its version and the files that belong to it.

    `modules_dir` is None for a kernel without /lib/modules/VERSION (a monolithic kernel, or
    one whose modules package is missing); `reason` says why `choose_kernel` picked it.
    """

    version: str
    image: Path
    config: Path | None = None
    system_map: Path | None = None
    modules_dir: Path | None = None
    reason: str = field(default="", compare=False)

    def describe(self) -> str:
        mods = str(self.modules_dir) if self.modules_dir else "no modules directory"
        return f"{self.version} (image {self.image}, {mods})"


# --- version ordering ---------------------------------------------------------------------


def _order_char(c: str) -> int:
    # dpkg's order: '~' before everything (even the end of the string), letters before the
    # other characters.
    if c == "~":
        return -1
    if c.isalpha():
        return ord(c)
    return ord(c) + 256


def version_key(version: str) -> tuple[tuple[tuple[int, ...], int], ...]:
    """A sort key ordering versions as dpkg compares upstream versions.

    The string is split into alternating non-digit and digit runs; digit runs compare as
    numbers (6.1.0-56 > 6.1.0-9), non-digit runs character by character in dpkg's order.
    A terminating pair makes a version sort after its `~` pre-releases and before its
    extensions ("1.0~rc1" < "1.0" < "1.0.1" < "1.0a").
    """
    parts: list[tuple[tuple[int, ...], int]] = []
    for text, digits in re.findall(r"(\D*)(\d*)", version):
        if not text and not digits:
            continue
        key = (*(_order_char(c) for c in text), 0)
        parts.append((key, int(digits) if digits else 0))
    parts.append(((0,), 0))
    return tuple(parts)


# --- reading versions from images -------------------------------------------------------------


def image_version(image: str | os.PathLike[str]) -> str | None:
    """The kernel release stored in an x86 bzImage's setup header, or None if there is none.

    The setup header ("HdrS" at 0x202) holds at 0x20E a pointer, relative to 0x200, to a
    NUL-terminated string that starts with the release ("6.1.0-56-amd64 (debian-kernel@...").
    """
    try:
        with open(image, "rb") as f:
            head = f.read(0x10000)
    except OSError:
        return None
    if len(head) < 0x210 or head[0x202:0x206] != b"HdrS":
        return None
    (pointer,) = struct.unpack_from("<H", head, 0x20E)
    offset = pointer + 0x200
    if pointer == 0 or offset >= len(head):
        return None
    raw = head[offset : offset + 256].split(b"\0", 1)[0]
    words = raw.decode("ascii", errors="replace").split()
    return words[0] if words else None


def _version_from_name(image: Path) -> str | None:
    for prefix in IMAGE_PREFIXES:
        if image.name.startswith(prefix) and len(image.name) > len(prefix):
            return image.name[len(prefix) :]
    # Fedora/Arch keep the image as /lib/modules/VERSION/vmlinuz.
    if image.name in ("vmlinuz", "vmlinux") and image.parent.parent.name == "modules":
        return image.parent.name
    return None


# --- finding kernels ---------------------------------------------------------------------------


def _existing(path: Path) -> Path | None:
    return path if path.exists() else None


def _kernel_for(version: str, image: Path, boot_dir: Path, modules_root: Path) -> Kernel:
    mdir = modules_root / version
    return Kernel(
        version=version,
        image=image,
        config=_existing(boot_dir / f"config-{version}")
        or _existing(mdir / "config")
        or _existing(mdir / "build" / ".config"),
        system_map=_existing(boot_dir / f"System.map-{version}") or _existing(mdir / "System.map"),
        modules_dir=mdir if (mdir / "modules.dep").is_file() else None,
    )


def find_kernels(
    boot_dir: str | os.PathLike[str] = "/boot",
    modules_root: str | os.PathLike[str] = "/lib/modules",
) -> list[Kernel]:
    """Every kernel image found in `boot_dir` (and in `modules_root`/VERSION/vmlinuz), oldest first.

    Unversioned symlinks (/boot/vmlinuz) and backup copies (*.old) are skipped.
    """
    boot = Path(boot_dir)
    mroot = Path(modules_root)
    found: dict[str, Kernel] = {}
    if boot.is_dir():
        for entry in sorted(boot.iterdir()):
            version = _version_from_name(entry)
            if version is None or entry.name.endswith(_IGNORED_SUFFIXES):
                continue
            if not entry.is_file():
                continue
            found.setdefault(version, _kernel_for(version, entry, boot, mroot))
    if mroot.is_dir():
        for mdir in sorted(mroot.iterdir()):
            image = mdir / "vmlinuz"
            if mdir.name not in found and image.is_file():
                found[mdir.name] = _kernel_for(mdir.name, image, boot, mroot)
    return sorted(found.values(), key=lambda k: version_key(k.version))


def running_kernel() -> str:
    """The release of the running kernel (`uname -r`)."""
    return os.uname().release


# --- choosing -----------------------------------------------------------------------------------


def _listing(kernels: list[Kernel], boot_dir: Path) -> str:
    if not kernels:
        return f"No kernel image was found in {boot_dir}."
    return "Kernels found: " + "; ".join(k.describe() for k in kernels) + "."


def choose_kernel(
    spec: str = "auto",
    *,
    boot_dir: str | os.PathLike[str] = "/boot",
    modules_root: str | os.PathLike[str] = "/lib/modules",
    running: str | None = None,
) -> Kernel:
    """The kernel the rescue media boots, from a KERNEL setting.

    - `auto`: the running kernel if its image and modules directory are on disk, else the
      newest kernel that has a modules directory (else the newest image at all).
    - a version string ("6.1.0-56-amd64"): that kernel's image in `boot_dir`.
    - a path to a kernel image (contains a "/"): its version is read from the bzImage header,
      else from the file name.

    The returned Kernel's `reason` says why it was chosen. Raises MissingError, listing the
    kernels found, when there is none that fits.
    """
    boot = Path(boot_dir)
    mroot = Path(modules_root)
    spec = spec.strip()
    if not spec:
        spec = "auto"
    if spec == "auto":
        return _choose_auto(boot, mroot, running if running is not None else running_kernel())
    if "/" in spec:
        return _choose_path(Path(spec), boot, mroot)
    kernels = find_kernels(boot, mroot)
    for k in kernels:
        if k.version == spec:
            return _with_reason(k, f"KERNEL names version {spec}")
    raise MissingError(
        f"KERNEL is {spec!r}, but no image of that kernel version was found in {boot} "
        f"(looked for {boot}/vmlinuz-{spec}). {_listing(kernels, boot)}",
        hint="Set KERNEL to one of the versions found, to `auto`, or to the path of an image; "
        + INSTALL_HINT,
    )


def _with_reason(kernel: Kernel, reason: str) -> Kernel:
    log.info("kernel %s chosen: %s", kernel.version, reason)
    return Kernel(
        kernel.version,
        kernel.image,
        kernel.config,
        kernel.system_map,
        kernel.modules_dir,
        reason,
    )


def _choose_auto(boot: Path, mroot: Path, running: str) -> Kernel:
    kernels = find_kernels(boot, mroot)
    for k in kernels:
        if k.version == running and k.modules_dir is not None:
            why = f"it is the running kernel ({running}) and its image is in {boot}"
            return _with_reason(k, why)
    with_modules = [k for k in kernels if k.modules_dir is not None]
    why_not = (
        f"the running kernel {running} has no image in {boot}"
        if all(k.version != running for k in kernels)
        else f"the running kernel {running} has no modules directory in {mroot}"
    )
    if with_modules:
        newest = with_modules[-1]
        return _with_reason(
            newest, f"{why_not}, so the newest installed kernel with modules was taken"
        )
    if kernels:
        newest = kernels[-1]
        return _with_reason(
            newest,
            f"{why_not} and no kernel has a modules directory, so the newest image was taken",
        )
    raise MissingError(
        f"No kernel for the rescue media: {why_not}, and {boot} holds no other kernel image "
        f"(vmlinuz-VERSION).",
        hint=INSTALL_HINT,
    )


def _choose_path(image: Path, boot: Path, mroot: Path) -> Kernel:
    if not image.is_file():
        raise MissingError(
            f"KERNEL is the path {str(image)!r}, but there is no such file. "
            f"{_listing(find_kernels(boot, mroot), boot)}",
            hint="Give the path of an existing kernel image, a version, or `auto`.",
        )
    version = (
        image_version(image) or _version_from_name(image.resolve()) or _version_from_name(image)
    )
    if version is None:
        raise MissingError(
            f"Cannot tell the version of the kernel image {image}: it has no bzImage version "
            "string and its name is not vmlinuz-VERSION.",
            hint="Name the image vmlinuz-VERSION or set KERNEL to a version instead.",
        )
    kernel = _kernel_for(version, image, image.parent, mroot)
    if kernel.config is None:
        kernel = Kernel(
            version,
            image,
            _existing(boot / f"config-{version}"),
            kernel.system_map or _existing(boot / f"System.map-{version}"),
            kernel.modules_dir,
        )
    return _with_reason(kernel, f"KERNEL names the image {image} (version {version})")


@dataclass(frozen=True)
class KernelChoice:
    """KERNEL chosen once, when the configuration is loaded: the kernel, or why there is none.

    No kernel is not an error until a step needs one (`dump` and `layout` work on a machine
    without a kernel image), so the reason is kept and raised by `kernel()`.
    """

    chosen: Kernel | None
    problem: MissingError | None = None

    @property
    def version(self) -> str:
        """The chosen version; '' when there is none."""
        return self.chosen.version if self.chosen is not None else ""

    def kernel(self) -> Kernel:
        """The chosen kernel, or the MissingError that explains why there is none."""
        if self.chosen is None:
            assert self.problem is not None
            raise self.problem
        return self.chosen


def choose_once(
    spec: str,
    *,
    boot_dir: str | os.PathLike[str] = "/boot",
    modules_root: str | os.PathLike[str] = "/lib/modules",
) -> KernelChoice:
    """What a KERNEL setting means on this machine, as a KernelChoice (never raises)."""
    try:
        return KernelChoice(choose_kernel(spec, boot_dir=boot_dir, modules_root=modules_root))
    except MissingError as exc:
        return KernelChoice(None, exc)


# --- configuration ------------------------------------------------------------------------------


def parse_kernel_config(text: str) -> dict[str, str]:
    """CONFIG_* settings of a kernel .config: "y", "m", numbers, or unquoted strings.

    Options that are "not set" are absent from the result.
    """
    config: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("CONFIG_") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        config[key] = value
    return config


def kernel_config(kernel: Kernel) -> dict[str, str]:
    """The kernel's configuration (/boot/config-VERSION), e.g. config["CONFIG_RD_ZSTD"] == "y"."""
    if kernel.config is None:
        raise MissingError(
            f"The configuration of kernel {kernel.version} was not found "
            f"(looked for config-{kernel.version} beside {kernel.image} and in its modules "
            "directory).",
            hint="Reinstall the kernel package, which ships /boot/config-VERSION.",
        )
    return parse_kernel_config(kernel.config.read_text(errors="replace"))
