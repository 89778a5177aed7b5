"""The rescue tree's skeleton: directories, accounts, NSS, os-release and the loader cache."""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence

from mkmedia.rootfs.copy import TreeCopier
from rescue_runtime import atomic
from rescue_runtime.run import run

# Top-level symlinks of merged-/usr systems: copied as links when they are links on the host,
# before anything could create them as directories.
HOST_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/var/run", "/var/lock")

# (path, mode or None for the host's mode)
DIRECTORIES: tuple[tuple[str, int | None], ...] = (
    ("/etc", None),
    ("/usr/bin", None),
    ("/usr/sbin", None),
    ("/usr/lib", None),
    ("/proc", 0o555),
    ("/sys", 0o555),
    ("/dev", 0o755),
    ("/run", 0o755),
    ("/tmp", 0o1777),
    ("/var/tmp", 0o1777),
    ("/var/log", 0o755),
    ("/var/lib", 0o755),
    ("/mnt/local", 0o755),
    ("/root", 0o700),
)

PASSWD = """\
root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
sshd:x:100:65534::/run/sshd:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
"""

# The groups udev rules and common tools refer to.
GROUPS = (
    ("root", 0), ("daemon", 1), ("bin", 2), ("sys", 3), ("adm", 4), ("tty", 5), ("disk", 6),
    ("lp", 7), ("kmem", 15), ("dialout", 20), ("cdrom", 24), ("floppy", 25), ("tape", 26),
    ("audio", 29), ("video", 44), ("utmp", 43), ("shadow", 42), ("input", 101), ("kvm", 102),
    ("render", 103), ("sgx", 104), ("nogroup", 65534),
)  # fmt: skip

# Root is locked ("!"): logins go through the console shell or SSH keys.
SHADOW = """\
root:!::0:99999:7:::
daemon:*::0:99999:7:::
sshd:*::0:99999:7:::
nobody:*::0:99999:7:::
"""

NSSWITCH = """\
passwd:         files
group:          files
shadow:         files
hosts:          files dns
networks:       files
protocols:      files
services:       files
ethers:         files
rpc:            files
"""

HOSTS = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"


def write_file(tree: str, path: str, text: str, mode: int = 0o644) -> None:
    """Write a file into the tree (temporary name, then rename)."""
    with atomic.atomic_path(tree + path, durable=False, mode=mode) as tmp:
        tmp.write_text(text, encoding="utf-8")
        os.chown(tmp, 0, 0)


def make_directories(copier: TreeCopier) -> None:
    """The host's top-level links, then the skeleton directories."""
    for link in HOST_LINKS:
        if os.path.islink(copier.src.host(link)) and copier.src.realpath(link) is not None:
            copier.copy_path(link)
    for path, mode in DIRECTORIES:
        copier.ensure_dir(path, mode)


def read_os_release(path: str) -> dict[str, str]:
    """KEY=value pairs of an os-release file (empty when absent)."""
    values: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError:
        return values
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, raw = line.partition("=")
        try:
            parts = shlex.split(raw)
        except ValueError:
            continue
        values[key] = parts[0] if parts else ""
    return values


def os_release_text(host: dict[str, str], version: str) -> str:
    """/etc/os-release of the rescue system, naming the host system it was made for."""
    host_name = host.get("NAME", "Linux")
    host_pretty = host.get("PRETTY_NAME", host_name)
    fields = {
        "NAME": "mkmedia rescue system",
        "PRETTY_NAME": f"mkmedia rescue system for {host_pretty}",
        "ID": "mkmedia-rescue",
        "ID_LIKE": " ".join(x for x in (host.get("ID", ""), host.get("ID_LIKE", "")) if x),
        "VERSION_ID": version,
        "MKMEDIA_HOST_NAME": host_name,
        "MKMEDIA_HOST_ID": host.get("ID", ""),
        "MKMEDIA_HOST_VERSION": host.get("VERSION", ""),
        "MKMEDIA_HOST_VERSION_ID": host.get("VERSION_ID", ""),
        "MKMEDIA_HOST_PRETTY_NAME": host_pretty,
    }
    return "".join(f"{k}={_quote(v)}\n" for k, v in fields.items())


def _quote(value: str) -> str:
    """os-release quoting: double quotes, with \\ " $ ` escaped."""
    for c in '\\"$`':
        value = value.replace(c, "\\" + c)
    return f'"{value}"'


def write_config_files(
    tree: str,
    *,
    host_os_release: str = "/etc/os-release",
    version: str = "0",
) -> None:
    """passwd, group, shadow, nsswitch.conf, hosts and os-release."""
    write_file(tree, "/etc/passwd", PASSWD)
    write_file(tree, "/etc/group", "".join(f"{n}:x:{g}:\n" for n, g in GROUPS))
    write_file(tree, "/etc/shadow", SHADOW, 0o600)
    write_file(tree, "/etc/nsswitch.conf", NSSWITCH)
    write_file(tree, "/etc/hosts", HOSTS)
    release = read_os_release(host_os_release)
    if not release:
        release = read_os_release("/usr/lib/os-release")
    target = tree + "/etc/os-release"
    if os.path.islink(target):
        os.unlink(target)
    write_file(tree, "/etc/os-release", os_release_text(release, version))


def write_ld_so_conf(tree: str, dirs: Sequence[str]) -> None:
    """/etc/ld.so.conf of the tree: the library directories the tree has, in order."""
    present = [d for d in dict.fromkeys(dirs) if os.path.isdir(tree + d)]
    text = "# Written by mkmedia: the library directories of the rescue system.\n"
    write_file(tree, "/etc/ld.so.conf", text + "".join(f"{d}\n" for d in present))


def run_ldconfig(tree: str) -> None:
    """Rebuild the tree's /etc/ld.so.cache (and soname links) from its ld.so.conf."""
    run(["ldconfig", "-r", tree], what="building the rescue tree's ld.so.cache")
