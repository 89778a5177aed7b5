"""The embedded interpreter works in a chroot holding nothing but what embed_python put there
(plus the shared libraries of its ELF files, found here with ldd: the rootfs assembler's own
resolver is tested elsewhere)."""

from __future__ import annotations

import os
import re
import shutil
import zipfile
from pathlib import Path, PurePosixPath

import pytest

from mkmedia.pyembed.embed import EmbeddedPython, embed_python
from rescue_runtime.run import Result, run

pytestmark = pytest.mark.integration

PYTHON = "/usr/bin/python3"
# json: the runtime's layout capture will import it; until then it comes in as an extra module.
EXTRA = ("json",)
EPOCH = 1_700_000_000
# The chroot must not see the test runner's Python settings.
CHROOT_ENV = {"PYTHONPATH": "", "PYTHONHOME": "", "PYTHONSAFEPATH": "", "LC_ALL": "C"}

if os.geteuid() != 0 or shutil.which("chroot") is None:
    pytest.skip("chroot needs root", allow_module_level=True)


def _lib_dir(path: str) -> Path:
    """The library's directory with directory symlinks resolved (/lib -> /usr/lib)."""
    return Path(os.path.realpath(os.path.dirname(path)))


def add_shared_libraries(tree: Path, elf_files: list[PurePosixPath]) -> list[str]:
    """TEST ONLY: copy the libraries `ldd` names for the ELF files, and the loader."""
    for top in ("lib", "lib64", "bin", "sbin"):
        host = Path("/", top)
        if host.is_symlink() and not (tree / top).exists():
            (tree / top).symlink_to(os.readlink(host))  # merged /usr
    libs: set[str] = set()
    for elf in elf_files:
        out = run(["ldd", str(elf)], check=False).stdout
        for line in out.splitlines():
            m = re.search(r"(?:=>\s*)?(/\S+)\s+\(0x", line)
            if m:
                libs.add(m.group(1))
    for lib in sorted(libs):
        dest = tree / _lib_dir(lib).relative_to("/") / os.path.basename(lib)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(os.path.realpath(lib), dest)
    return sorted(libs)


def chroot(tree: Path, *argv: str, check: bool = True) -> Result:
    return run(["chroot", str(tree), *argv], env=CHROOT_ENV, check=check)


@pytest.fixture(scope="module")
def scan_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("scan-cache") / "scan.json"


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory, scan_cache: Path) -> EmbeddedPython:
    tree = tmp_path_factory.mktemp("rescue") / "tree"
    result = embed_python(
        tree, python=PYTHON, extra_modules=EXTRA, source_date_epoch=EPOCH, scan_cache=scan_cache
    )
    add_shared_libraries(tree, [result.interpreter, *result.extension_modules])
    return result


@pytest.fixture(scope="module")
def embedded_again(
    tmp_path_factory: pytest.TempPathFactory, embedded: EmbeddedPython, scan_cache: Path
) -> EmbeddedPython:
    """A second build in another place, from the scan cache the first one left."""
    assert scan_cache.is_file()
    tree = tmp_path_factory.mktemp("rescue-again") / "another" / "tree"
    return embed_python(
        tree, python=PYTHON, extra_modules=EXTRA, source_date_epoch=EPOCH, scan_cache=scan_cache
    )


def test_tree_layout(embedded: EmbeddedPython) -> None:
    tree = embedded.tree
    assert embedded.zip_path == PurePosixPath("/usr/lib/python311.zip")
    assert embedded.lib_dynload == PurePosixPath("/usr/lib/python3.11/lib-dynload")
    assert embedded.interpreter == PurePosixPath("/usr/bin/python3.11")
    assert embedded.links == (PurePosixPath("/usr/bin/python3"),)
    assert os.readlink(tree / "usr/bin/python3") == "python3.11"
    assert (tree / "usr/bin/python3.11").read_bytes() == Path("/usr/bin/python3.11").read_bytes()
    for ext in embedded.extension_modules:
        assert ext.parent == embedded.lib_dynload
        assert embedded.in_tree(ext).read_bytes() == Path(ext).read_bytes()
    assert embedded.elf_files == (embedded.interpreter, *embedded.extension_modules)
    # Nothing but the zip and lib-dynload from the standard library directory.
    assert sorted(p.name for p in (tree / "usr/lib/python3.11").iterdir()) == ["lib-dynload"]
    script = (tree / "usr/bin/mkmedia").read_text()
    assert script.startswith("#!/usr/bin/python3\n")
    assert os.access(tree / "usr/bin/mkmedia", os.X_OK)


def test_imports_in_chroot(embedded: EmbeddedPython) -> None:
    code = (
        "import rescue_runtime, json, tarfile, subprocess, rescue_runtime.cli\n"
        "print(tarfile.__file__)\n"
        "print(rescue_runtime.cli.__file__)\n"
        "print(json.__file__)\n"
    )
    result = chroot(embedded.tree, "/usr/bin/python3", "-c", code)
    lines = result.stdout.splitlines()
    assert lines == [
        "/usr/lib/python311.zip/tarfile.pyc",
        "/usr/lib/python311.zip/rescue_runtime/cli.pyc",
        "/usr/lib/python311.zip/json/__init__.pyc",
    ]
    # No "Could not find platform (in)dependent libraries" from getpath.
    assert result.stderr == ""


def test_paths_found_through_landmarks(embedded: EmbeddedPython) -> None:
    code = (
        "import sys, _bz2, lzma\n"
        "print(sys.path)\nprint(sys.prefix, sys.exec_prefix)\nprint(_bz2.__file__)\n"
    )
    result = chroot(embedded.tree, "/usr/bin/python3", "-c", code)
    path, prefixes, bz2_file = result.stdout.splitlines()
    print(f"sys.path in the chroot: {path}")
    assert "'/usr/lib/python311.zip'" in path
    assert "'/usr/lib/python3.11/lib-dynload'" in path
    assert prefixes == "/usr /usr"
    assert bz2_file.startswith("/usr/lib/python3.11/lib-dynload/_bz2.")
    assert result.stderr == ""


@pytest.mark.parametrize("flags", [["-I"], ["-S"], ["-E", "-s"]])
def test_startup_modules_come_from_the_zip(embedded: EmbeddedPython, flags: list[str]) -> None:
    """With frozen modules off, os, site, codecs, ... are imported from the zip's pycs."""
    code = "import os, codecs, stat, posixpath, io, abc; print(os.__file__, codecs.__file__)"
    argv = ["/usr/bin/python3", "-X", "frozen_modules=off", *flags, "-c", code]
    result = chroot(embedded.tree, *argv)
    assert result.stdout.split() == [
        "/usr/lib/python311.zip/os.pyc",
        "/usr/lib/python311.zip/codecs.pyc",
    ]
    assert result.stderr == ""


def test_mkmedia_help_in_chroot(embedded: EmbeddedPython) -> None:
    result = chroot(embedded.tree, "/usr/bin/mkmedia", "--help")
    assert "mkmedia rescue system" in result.stdout
    assert "exit codes:" in result.stdout
    dump = chroot(embedded.tree, "/usr/bin/python3", "-m", "rescue_runtime", "dump")
    assert dump.stdout.startswith("mkmedia rescue system ")


def test_codecs_for_c_locale(embedded: EmbeddedPython) -> None:
    code = (
        "import sys\n"
        "print(sys.getfilesystemencoding(), sys.stdout.encoding)\n"
        "print('bücher.example'.encode('idna').decode('ascii'))\n"
        "print(bytes([0x81]).decode('cp437'), 'é'.encode('latin-1'), b'x'.decode('ascii'))\n"
    )
    result = chroot(embedded.tree, "/usr/bin/python3", "-c", code)
    fs, idna, rest = result.stdout.splitlines()
    assert fs == "utf-8 utf-8"
    assert idna == "xn--bcher-kva.example"
    assert rest == "ü b'\\xe9' x"


@pytest.mark.parametrize("module", ["sqlite3", "tkinter", "unittest", "pydoc"])
def test_modules_outside_closure_are_absent(embedded: EmbeddedPython, module: str) -> None:
    # The host has them (Debian's python3.11 ships these; tkinter only with python3-tk): the
    # chroot does not, which proves the trimming.
    host = run([PYTHON, "-c", f"import {module}"], check=False)
    if module != "tkinter":
        assert host.ok, host.stderr
    result = chroot(embedded.tree, "/usr/bin/python3", "-c", f"import {module}", check=False)
    assert not result.ok
    assert f"No module named '{module}'" in result.stderr
    assert module not in embedded.modules


def test_missing_landmarks_are_noticed(embedded: EmbeddedPython, tmp_path: Path) -> None:
    """Without the zip (or lib-dynload) getpath complains: the zip IS the prefix landmark."""
    copy = tmp_path / "copy"
    shutil.copytree(embedded.tree, copy, symlinks=True)
    (copy / "usr/lib/python311.zip").unlink()
    result = chroot(copy, "/usr/bin/python3", "-S", "-c", "pass", check=False)
    assert "Could not find platform independent libraries" in result.stderr
    shutil.rmtree(copy / "usr/lib/python3.11/lib-dynload")
    result = chroot(copy, "/usr/bin/python3", "-S", "-c", "pass", check=False)
    assert "Could not find platform dependent libraries" in result.stderr


def test_zip_is_reproducible(embedded: EmbeddedPython, embedded_again: EmbeddedPython) -> None:
    first = embedded.in_tree(embedded.zip_path).read_bytes()
    second = embedded_again.in_tree(embedded_again.zip_path).read_bytes()
    assert embedded.tree != embedded_again.tree
    assert first == second
    assert embedded.modules == embedded_again.modules
    with zipfile.ZipFile(embedded.in_tree(embedded.zip_path)) as zf:
        infos = zf.infolist()
        names = [i.filename for i in infos]
        assert names == sorted(names)
        assert {i.date_time for i in infos} == {(2023, 11, 14, 22, 13, 20)}
        pyc = zf.read("rescue_runtime/cli.pyc")
    # PEP 552 flags: hash-based (bit 0), not checked against a source (bit 1 clear).
    assert pyc[4:8] == b"\x01\x00\x00\x00"
    script = (embedded.tree / "usr/bin/mkmedia").read_bytes()
    assert script == (embedded_again.tree / "usr/bin/mkmedia").read_bytes()


def test_sizes_reported(embedded: EmbeddedPython) -> None:
    full = int(run(["du", "-sb", "/usr/lib/python3.11"]).stdout.split()[0])
    zip_size = embedded.in_tree(embedded.zip_path).stat().st_size
    assert embedded.zip_size == zip_size
    assert embedded.interpreter_size == Path("/usr/bin/python3.11").stat().st_size
    print(
        f"\n{embedded.summary()}\nfull stdlib (du -sb /usr/lib/python3.11): {full / 1e6:.1f} MB, "
        f"embedded zip + extensions: {(zip_size + embedded.extensions_size) / 1e6:.2f} MB "
        f"({100 * (zip_size + embedded.extensions_size) / full:.1f} %)"
    )
    assert zip_size + embedded.extensions_size < full / 10
