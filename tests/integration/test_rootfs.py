"""Assembling the rescue root tree from this machine's programs, checked by running them."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
from pathlib import Path

import pytest

from mkmedia.rootfs import (
    AssemblyResult,
    TreeCopier,
    assemble_tree,
    check_tree,
    copy_as_is,
    failures,
    find_programs,
    problems_to_errors,
    size_report,
    smoke_run,
)
from rescue_runtime.errors import MissingError, MkmediaError
from rescue_runtime.run import run

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="chroot, chown and setcap need root"),
]

PROGRAMS = [
    "bash", "lvm", "mdadm", "cryptsetup", "parted", "sfdisk", "sgdisk", "mkfs.ext4",
    "mkfs.xfs", "mkfs.btrfs", "mkfs.vfat", "mkswap", "tar", "zstd", "ip", "udevadm", "blkid",
    "lsblk", "mount", "/usr/bin/python3",
]  # fmt: skip
REQUIRED = ["bash", "lvm", "mdadm", "cryptsetup", "parted", "mount"]
LIBS = ["libnss_files.so.2", "libnss_dns.so.2", "libgcc_s.so.1"]
SMOKE = [
    ["bash", "-c", "true"],
    ["lvm", "version"],
    ["mdadm", "--version"],
    ["cryptsetup", "--version"],
    ["parted", "--version"],
    ["sfdisk", "--version"],
    ["sgdisk", "--version"],
    ["mkfs.ext4", "-V"],
    ["mkfs.xfs", "-V"],
    ["mkfs.btrfs", "--version"],
    ["mkfs.vfat", "--help"],
    ["mkswap", "--version"],
    ["tar", "--version"],
    ["zstd", "--version"],
    ["ip", "-V"],
    ["udevadm", "--version"],
    ["blkid", "-V"],
    ["lsblk", "--version"],
    ["mount", "--version"],
    ["/usr/bin/python3", "--version"],
]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> AssemblyResult:
    tree = tmp_path_factory.mktemp("rescue") / "tree"
    return assemble_tree(tree, PROGRAMS, REQUIRED, LIBS, [], [])


def test_realistic_tree_is_self_sufficient_and_runs(built: AssemblyResult) -> None:
    tree = built.tree
    assert built.warnings == []
    assert set(built.programs) == {*PROGRAMS, "/bin/sh"}
    assert check_tree(tree) == []
    results = smoke_run(tree, SMOKE)
    assert len(results) == len(SMOKE)
    assert failures(results) == [], "\n\n".join(str(r) for r in failures(results))
    # The programs really are the host's, run from the tree.
    version = next(r for r in results if r.command[0] == "/usr/bin/python3").output
    assert version.split()[1] == run(["/usr/bin/python3", "--version"]).stdout.split()[1]


def test_tree_reproduces_host_symlinks_and_metadata(built: AssemblyResult) -> None:
    tree = str(built.tree)
    for link in ("/lib", "/lib64", "/bin", "/sbin", "/lib64/ld-linux-x86-64.so.2"):
        if os.path.islink(link):
            assert os.readlink(tree + link) == os.readlink(link), link
    interp = "/lib64/ld-linux-x86-64.so.2"
    real = os.path.realpath(interp)
    assert os.path.isfile(tree + real) and not os.path.islink(tree + real)
    # libc.so.6 is reached through the same path as on the host.
    assert os.path.exists(tree + "/lib/x86_64-linux-gnu/libc.so.6")
    for name in ("mount", "bash"):
        host = os.lstat(built.programs[name])
        copy = os.lstat(tree + built.programs[name])
        assert stat.S_IMODE(copy.st_mode) == stat.S_IMODE(host.st_mode), name
        assert (copy.st_uid, copy.st_gid) == (host.st_uid, host.st_gid)
    if os.stat("/usr/bin/mount").st_mode & stat.S_ISUID:
        assert os.stat(tree + "/usr/bin/mount").st_mode & stat.S_ISUID
    # The loader cache was rebuilt for the tree and NSS modules are there.
    assert os.path.getsize(tree + "/etc/ld.so.cache") > 0
    assert any(p.endswith("libnss_dns.so.2") for p in built.libraries)


def test_skeleton(built: AssemblyResult) -> None:
    tree = str(built.tree)
    assert stat.S_IMODE(os.stat(tree + "/tmp").st_mode) == 0o1777
    for d in ("/proc", "/sys", "/dev", "/run", "/var/log", "/mnt/local", "/root", "/etc"):
        assert os.path.isdir(tree + d), d
    passwd = Path(tree + "/etc/passwd").read_text()
    assert passwd.startswith("root:x:0:0:")
    shadow = Path(tree + "/etc/shadow").read_text().splitlines()
    assert shadow[0].split(":")[1] == "!"  # locked, no password
    assert stat.S_IMODE(os.stat(tree + "/etc/shadow").st_mode) == 0o600
    release = Path(tree + "/etc/os-release").read_text()
    assert 'NAME="mkmedia rescue system"' in release.splitlines()
    host_name = next(
        line.split("=", 1)[1].strip('"')
        for line in Path("/etc/os-release").read_text().splitlines()
        if line.startswith("NAME=")
    )
    assert f'MKMEDIA_HOST_NAME="{host_name}"' in release
    assert "hosts:" in Path(tree + "/etc/nsswitch.conf").read_text()
    conf = Path(tree + "/etc/ld.so.conf").read_text().split()
    assert "/usr/lib/x86_64-linux-gnu" in conf or "/lib/x86_64-linux-gnu" in conf
    # The tree's cache lists the tree's libraries (under the tree's own paths).
    listing = run(["ldconfig", "-C", tree + "/etc/ld.so.cache", "-p"]).stdout
    assert "libc.so.6 (libc6,x86-64) => /lib/x86_64-linux-gnu/libc.so.6" in listing
    assert "libdevmapper.so" in listing
    assert not any(tree in line for line in listing.splitlines()[1:])


def test_size_report(built: AssemblyResult) -> None:
    report = size_report(built.tree)
    data = json.loads(json.dumps(report.as_dict()))
    assert data["parts"]["programs"]["files"] >= len(PROGRAMS) - 2
    assert data["parts"]["libraries"]["bytes"] > 1_000_000
    sizes = [x["bytes"] for x in data["largest"]]
    assert len(sizes) == 20 and sizes == sorted(sizes, reverse=True)
    assert report.total_bytes == sum(p["bytes"] for p in data["parts"].values())
    text = report.as_text()
    assert "libraries" in text and data["largest"][0]["path"] in text


def test_deleted_library_is_named_with_its_program(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    result = assemble_tree(tree, ["mkswap"], ["lvm"], [], [], [])
    assert result.problems == []
    # Assembling again into the same tree works (links and files are replaced in place).
    assemble_tree(tree, ["mkswap"], ["lvm"], [], [], [])
    victim = next(p for p in result.closure.real_files() if "libdevmapper.so" in p)
    os.unlink(str(tree) + victim)
    problems = check_tree(tree)
    assert problems, "deleting libdevmapper must break lvm"
    lvm = [p for p in problems if p.file.endswith("/lvm")]
    assert lvm and all(p.name.startswith("libdevmapper.so") for p in lvm)
    with pytest.raises(MissingError) as err:
        problems_to_errors(problems, {"lvm": "/usr/sbin/lvm"}, {}, tree=tree)
    assert "lvm" in str(err.value) and "libdevmapper.so" in str(err.value)
    warnings = problems_to_errors(problems, {}, {"lvm": "/sbin/lvm"}, tree=tree)
    assert any("optional program lvm" in w and "libdevmapper" in w for w in warnings)


def test_missing_required_program_is_named(tmp_path: Path) -> None:
    with pytest.raises(MissingError, match="no-such-tool-xyz"):
        assemble_tree(tmp_path / "t", ["bash"], ["no-such-tool-xyz", "bash"], [], [], [])
    lookup = find_programs(["bash", "no-such-optional-xyz"], ["/usr/bin/tar"])
    assert lookup.found == {"/usr/bin/tar": "/usr/bin/tar", "bash": lookup.found["bash"]}
    assert lookup.missing_optional == ["no-such-optional-xyz"]
    assert "no-such-optional-xyz" in lookup.warnings[0]


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A small tree of files to copy as is."""
    src = tmp_path / "src"
    (src / "sub" / "deep").mkdir(parents=True)
    (src / "skipdir" / "inner").mkdir(parents=True)
    (src / "a.conf").write_text("a\n")
    (src / "skip-me.conf").write_text("no\n")
    (src / "sub" / "deep" / "b.txt").write_text("b\n")
    (src / "skipdir" / "inner" / "c.txt").write_text("c\n")
    (src / "sub" / "rel-link").symlink_to("deep/b.txt")
    (src / "sub" / "abs-link").symlink_to(str(src / "a.conf"))
    os.link(src / "a.conf", src / "sub" / "hard.conf")
    os.chmod(src / "sub" / "deep", 0o750)
    os.chown(src / "sub" / "deep" / "b.txt", 1234, 5678)
    shutil.copy("/usr/bin/true", src / "sub" / "true-copy")
    return src


def test_copy_as_is_and_exclude(tmp_path: Path, source: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    copier = TreeCopier(tree)
    result = copy_as_is(
        copier,
        [str(source / "*.conf"), str(source / "sub"), str(source / "skipdir"), "/nowhere/x*"],
        [str(source / "skip-*"), str(source / "skipdir")],
    )
    t = str(tree)
    assert Path(t + str(source / "a.conf")).read_text() == "a\n"
    assert not os.path.lexists(t + str(source / "skip-me.conf"))
    assert not os.path.lexists(t + str(source / "skipdir"))
    assert str(source / "skipdir") in result.excluded
    assert Path(t + str(source / "sub/deep/b.txt")).read_text() == "b\n"
    assert os.readlink(t + str(source / "sub/rel-link")) == "deep/b.txt"
    assert os.readlink(t + str(source / "sub/abs-link")) == str(source / "a.conf")
    st = os.stat(t + str(source / "sub/deep/b.txt"))
    assert (st.st_uid, st.st_gid) == (1234, 5678)
    assert stat.S_IMODE(os.stat(t + str(source / "sub/deep")).st_mode) == 0o750
    a = os.stat(t + str(source / "a.conf"))
    assert a.st_ino == os.stat(t + str(source / "sub/hard.conf")).st_ino  # still hard links
    assert result.elf_files == [str(source / "sub/true-copy")]
    assert any("/nowhere/x*" in w for w in result.warnings)


def test_copy_as_is_refuses_what_it_cannot_copy(tmp_path: Path, source: Path) -> None:
    sock_path = source / "sub" / "control.sock"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(sock_path))
    try:
        tree = tmp_path / "tree"
        tree.mkdir()
        with pytest.raises(MkmediaError, match=r"control\.sock"):
            copy_as_is(TreeCopier(tree), [str(source / "sub")], [])
        result = copy_as_is(TreeCopier(tree), [str(source / "sub")], [str(sock_path)])
        assert str(sock_path) in result.excluded
    finally:
        sock.close()


def test_setuid_and_capabilities_survive(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    suid = src / "suid-prog"
    capped = src / "capped-prog"
    shutil.copy("/usr/bin/true", suid)
    shutil.copy("/usr/bin/true", capped)
    os.chown(suid, 0, 5)
    os.chmod(suid, 0o4750)
    run(["setcap", "cap_net_raw,cap_net_admin+ep", str(capped)])
    tree = tmp_path / "tree"
    result = assemble_tree(tree, [], [str(suid), str(capped)], [], [], [])
    assert result.problems == []
    copy = os.stat(str(tree) + str(suid))
    assert stat.S_IMODE(copy.st_mode) == 0o4750 and (copy.st_uid, copy.st_gid) == (0, 5)
    out = run(["getcap", str(tree) + str(capped)]).stdout
    assert "cap_net_admin,cap_net_raw=ep" in out
    assert os.getxattr(str(tree) + str(capped), "security.capability") == os.getxattr(
        str(capped), "security.capability"
    )
    assert failures(smoke_run(tree, [[str(suid)], [str(capped)]])) == []
