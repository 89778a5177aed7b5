"""The import scanner of mkmedia/pyembed/probe.py and the reproducible zip, run in-process."""

from __future__ import annotations

import os
import textwrap
import zipfile
from pathlib import Path

import pytest

from mkmedia.pyembed.archive import ZIP_EPOCH, ZipEntry, write_zip, zip_date_time
from mkmedia.pyembed.embed import ModuleSource
from mkmedia.pyembed.probe import Resolver, codec_modules, scan_imports
from tests.files import write_files


def imports(
    source: str, module: str = "pkg.mod", *, package: bool = False, script: bool = True
) -> set[tuple[str, bool]]:
    src = textwrap.dedent(source).encode()
    found = scan_imports(src, "x.py", module, package, script_code=script)
    return {(name, member) for name, _line, member in found if not name.startswith("encodings")}


def test_top_level_and_function_imports() -> None:
    found = imports(
        """
        import os, xml.dom
        def f():
            import csv
        class C:
            def g(self):
                try:
                    from json import decoder
                except ImportError:
                    pass
        """
    )
    assert found == {
        ("os", False),
        ("xml.dom", False),
        ("csv", False),
        ("json", False),
        ("json.decoder", True),
    }


def test_relative_imports_are_made_absolute() -> None:
    src = "from . import a\nfrom .b import c\nfrom .. import d\n"
    assert imports(src, "pkg.sub.mod") == {
        ("pkg.sub", False),
        ("pkg.sub.a", True),
        ("pkg.sub.b", False),
        ("pkg.sub.b.c", True),
        ("pkg", False),
        ("pkg.d", True),
    }
    # In a package's __init__, "." is the package itself.
    assert ("pkg.sub.a", True) in imports("from . import a\n", "pkg.sub", package=True)


def test_main_guard_and_type_checking_are_skipped() -> None:
    found = imports(
        """
        from typing import TYPE_CHECKING
        if TYPE_CHECKING:
            import sqlite3
        else:
            import shlex
        if __name__ == "__main__":
            import doctest
        """
    )
    assert ("sqlite3", False) not in found
    assert ("doctest", False) not in found
    assert ("shlex", False) in found


def test_literal_lazy_imports() -> None:
    found = imports(
        "import importlib\nm = importlib.import_module('tarfile')\n__import__('gzip')\n"
    )
    assert {("tarfile", False), ("gzip", False)} <= found


def test_script_only_functions_are_skipped_for_stdlib() -> None:
    source = """
        def used():
            import zlib
        def _helper():
            import statistics
        def _test():
            import doctest
            _helper()
        used()
        if __name__ == "__main__":
            _test()
    """
    stdlib_view = imports(source, script=False)
    assert ("zlib", False) in stdlib_view
    # _test is reached only from the guard, _helper only from _test.
    assert ("doctest", False) not in stdlib_view
    assert ("statistics", False) not in stdlib_view
    # Our own packages keep everything.
    assert ("doctest", False) in imports(source, script=True)


def test_function_also_used_elsewhere_is_kept() -> None:
    source = """
        def main():
            import argparse
        def api():
            return main
        if __name__ == "__main__":
            main()
    """
    assert ("argparse", False) in imports(source, script=False)


def test_codec_names_map_to_encodings_modules() -> None:
    text = (
        "x.encode('idna')\nb.decode(\"latin-1\")\n"
        "codecs.lookup('punycode')\nopen(f, encoding='utf8')\n"
    )
    assert codec_modules(text) == [
        "encodings.idna",
        "encodings.latin_1",
        "encodings.punycode",
        "encodings.utf_8",
    ]


def test_resolver_finds_without_importing(tmp_path: Path) -> None:
    write_files(
        tmp_path / "probe_pkg_xyz",
        {
            "__init__.py": "raise RuntimeError('must not be imported')\n",
            "sub/__init__.py": "",
            "sub/leaf.py": "",
        },
    )
    resolver = Resolver({"probe_pkg_xyz": str(tmp_path)})
    leaf = resolver.find("probe_pkg_xyz.sub.leaf")
    assert leaf is not None and leaf.kind == "source" and not leaf.is_package
    sub = resolver.find("probe_pkg_xyz.sub")
    assert sub is not None and sub.is_package
    assert resolver.find("probe_pkg_xyz.nope") is None
    builtin = resolver.find("sys")
    assert builtin is not None and builtin.kind == "builtin"


def test_zip_member_names() -> None:
    assert ModuleSource("a.b", "source", "/x", True, "").arcname == "a/b/__init__.pyc"
    assert ModuleSource("a.b", "source", "/x", False, "").arcname == "a/b.pyc"


def test_zip_is_reproducible(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "b.pyc").write_bytes(b"bee" * 100)
    (src / "a.pyc").write_bytes(b"ay" * 100)
    entries = [ZipEntry("z/b.pyc", src / "b.pyc"), ZipEntry("a.pyc", src / "a.pyc")]
    one, two = tmp_path / "one.zip", tmp_path / "two.zip"
    write_zip(one, entries, source_date_epoch=1_700_000_000)
    os.utime(src / "a.pyc", (1, 1))  # file times must not matter
    write_zip(two, list(reversed(entries)), source_date_epoch=1_700_000_000)
    assert one.read_bytes() == two.read_bytes()
    with zipfile.ZipFile(one) as zf:
        assert zf.namelist() == ["a.pyc", "z/b.pyc"]
        assert zf.getinfo("a.pyc").date_time == (2023, 11, 14, 22, 13, 20)
        assert zf.read("z/b.pyc") == b"bee" * 100
    write_zip(two, entries, source_date_epoch=1_700_000_002)
    assert one.read_bytes() != two.read_bytes()
    assert not list(tmp_path.glob(".*.partial"))


def test_zip_date_time_clamps() -> None:
    assert zip_date_time(None) == ZIP_EPOCH
    assert zip_date_time(0) == ZIP_EPOCH
    assert zip_date_time(315532801) == (1980, 1, 1, 0, 0, 0)  # odd seconds round down


def test_duplicate_members_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"")
    with pytest.raises(ValueError):
        write_zip(tmp_path / "x.zip", [ZipEntry("a", tmp_path / "a")] * 2)
