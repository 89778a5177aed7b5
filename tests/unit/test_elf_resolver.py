"""The ELF resolver on tiny programs and libraries built with gcc, checked against the loader."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from mkmedia.elf.reader import read_elf
from mkmedia.elf.resolver import ElfResolver
from mkmedia.elf.scripts import env_program, parse_shebang
from mkmedia.elf.searchpath import host_x86_hwcaps, read_ld_so_conf
from mkmedia.rootpaths import RootPaths
from rescue_runtime.errors import MissingError, MkmediaError
from rescue_runtime.run import run
from tests.elf_reference import read_elf_pyelftools
from tests.files import write_files

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")


def cc(out: Path, source: str, *args: str) -> Path:
    """Compile C source into `out` with extra gcc arguments."""
    src = out.with_name(out.name + ".c")
    src.write_text(source)
    run(["gcc", "-o", str(out), str(src), *args])
    return out


def note_program(out: Path, payload: str, *args: str) -> Path:
    """A program carrying `payload` (JSON) in a systemd-style .note.dlopen ELF note."""
    json_c = payload.replace('"', '\\"')
    source = (
        f'#define JSON "{json_c}"\n'
        '__attribute__((used, section(".note.dlopen"), aligned(4)))\n'
        "static const struct { unsigned namesz, descsz, type; char name[4];\n"
        "    char desc[(sizeof(JSON) + 3) & ~3]; }\n"
        'note = {4, sizeof(JSON), 0x407c0c0a, "FDO", JSON};\n'
        "int main(void) { return 0; }\n"
    )
    return cc(out, source, *args)


def shared(out: Path, soname: str, body: str = "int f(void){return 1;}", *args: str) -> Path:
    return cc(out, body, "-shared", "-fPIC", f"-Wl,-soname,{soname}", *args)


def ldd(path: Path) -> dict[str, str]:
    """ldd's view: needed name -> path (or 'not found')."""
    out: dict[str, str] = {}
    for line in run(["ldd", str(path)], check=False).stdout.splitlines():
        if "=>" in line:
            name, _, rest = line.strip().partition(" => ")
            out[name] = rest.split(" (0x")[0]
    return out


@pytest.fixture
def app(tmp_path: Path) -> Path:
    """APP/bin/prog needs liba (in APP/lib), liba needs libb (also in APP/lib, no rpath)."""
    lib = tmp_path / "app" / "lib"
    lib.mkdir(parents=True)
    (tmp_path / "app" / "bin").mkdir()
    # libb.so.1 -> libb.so.1.0: the symlink a package would carry.
    shared(lib / "libb.so.1.0", "libb.so.1")
    (lib / "libb.so.1").symlink_to("libb.so.1.0")
    build_liba(lib)
    return tmp_path / "app"


def build_liba(lib: Path, *flags: str) -> Path:
    """lib/liba.so.1, whose g() calls libb's f(), linked with these extra flags."""
    return shared(
        lib / "liba.so.1",
        "liba.so.1",
        "int f(void); int g(void){return f();}",
        f"-L{lib}",
        "-l:libb.so.1",
        *flags,
    )


def build_prog(app: Path, name: str, dtags: str) -> Path:
    return cc(
        app / "bin" / name,
        "int g(void); int main(void){return g();}",
        f"-L{app / 'lib'}",
        "-l:liba.so.1",
        "-Wl,-rpath,$ORIGIN/../lib",
        f"-Wl,--{dtags}-new-dtags",
        "-Wl,--allow-shlib-undefined",
    )


def test_rpath_is_inherited_by_dependencies(app: Path) -> None:
    prog = build_prog(app, "prog", "disable")
    info = ElfResolver().info(str(prog))
    assert info is not None and info.rpath == ("$ORIGIN/../lib",) and not info.runpath
    paths, missing = ElfResolver().libraries_of(str(prog))
    assert missing == []
    assert str(app / "bin/../lib/libb.so.1") in paths  # found through the program's RPATH
    assert ldd(prog)["libb.so.1"] == str(app / "bin/../lib/libb.so.1")
    assert run([str(prog)], check=False).returncode == 1  # it really runs


def test_runpath_is_not_inherited(app: Path) -> None:
    prog = build_prog(app, "prog", "enable")
    info = ElfResolver().info(str(prog))
    assert info is not None and info.runpath == ("$ORIGIN/../lib",) and not info.rpath
    paths, missing = ElfResolver().libraries_of(str(prog))
    assert str(app / "bin/../lib/liba.so.1") in paths
    assert missing == [(str(app / "bin/../lib/liba.so.1"), "libb.so.1")]
    assert ldd(prog)["libb.so.1"] == "not found"  # the loader agrees
    closure = ElfResolver().closure([str(prog)])
    assert [(m.needed_by, m.name) for m in closure.missing] == missing
    assert "libb.so.1" in str(closure.missing[0])


def test_runpath_of_a_library_applies_to_its_own_needs(app: Path) -> None:
    # liba gets its own RUNPATH: then libb is found although the program's RUNPATH is not
    # inherited.
    build_liba(app / "lib", "-Wl,-rpath,${ORIGIN}", "-Wl,--enable-new-dtags")
    prog = build_prog(app, "prog", "enable")
    paths, missing = ElfResolver().libraries_of(str(prog))
    assert missing == []
    assert str(app / "bin/../lib/libb.so.1") in paths
    assert ldd(prog)["libb.so.1"] == str(app / "bin/../lib/libb.so.1")


def test_symlink_chain_is_listed(app: Path, tmp_path: Path) -> None:
    prog = build_prog(app, "prog", "disable")
    # The program is reached through a symlinked directory and a symlink to it.
    (tmp_path / "bin").symlink_to("app/bin")
    (app / "bin" / "alias").symlink_to("prog")
    closure = ElfResolver().closure([str(tmp_path / "bin" / "alias")])
    files = set(closure.files)
    assert str(tmp_path / "bin") in files and closure.symlinks[str(tmp_path / "bin")] == "app/bin"
    assert str(app / "bin" / "alias") in files
    assert closure.symlinks[str(app / "bin" / "alias")] == "prog"
    assert str(prog) in files
    assert str(app / "lib" / "libb.so.1") in closure.symlinks
    assert str(app / "lib" / "libb.so.1.0") in files
    # The system loader is a symlink chain too (/lib64 -> usr/lib64 on merged-/usr systems).
    interp = ElfResolver().info(str(prog)).interp  # type: ignore[union-attr]
    assert interp is not None
    chain = ElfResolver().chain(interp)
    assert chain[-1] in files and all(p in files for p in chain)
    assert os.path.realpath(interp) == chain[-1]
    for link in closure.symlinks:
        assert os.path.islink(link)
    for path in closure.real_files():
        assert not os.path.islink(path)


def test_lib_and_platform_tokens(tmp_path: Path) -> None:
    multi = tmp_path / "lib" / "x86_64-linux-gnu"
    multi.mkdir(parents=True)
    plat = tmp_path / "x86_64"
    plat.mkdir()
    shared(multi / "libm1.so", "libm1.so")
    shared(plat / "libp1.so", "libp1.so", "int h(void){return 2;}")
    prog = cc(
        tmp_path / "prog",
        "int f(void); int h(void); int main(void){return f()+h();}",
        f"-L{multi}",
        f"-L{plat}",
        "-l:libm1.so",
        "-l:libp1.so",
        "-Wl,-rpath,$ORIGIN/$LIB:$ORIGIN/$PLATFORM",
    )
    paths, missing = ElfResolver().libraries_of(str(prog))
    assert missing == []
    assert str(multi / "libm1.so") in paths and str(plat / "libp1.so") in paths
    assert ldd(prog)["libm1.so"] == str(multi / "libm1.so")


def test_wrong_elf_class_is_skipped(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    shared(second / "libc1.so", "libc1.so")
    # A 32-bit library of the same name earlier in the search path must be passed over.
    asm = tmp_path / "e.s"
    asm.write_text(".text\n.globl f\nf: ret\n")
    run(["as", "--32", "-o", str(tmp_path / "e.o"), str(asm)])
    run(["ld", "-m", "elf_i386", "-shared", "-soname", "libc1.so", "-o", str(first / "libc1.so"),
         str(tmp_path / "e.o")])  # fmt: skip
    prog = cc(
        tmp_path / "prog",
        "int f(void); int main(void){return f();}",
        f"-L{second}",
        "-l:libc1.so",
        f"-Wl,-rpath,{first}:{second}",
    )
    paths, _ = ElfResolver().libraries_of(str(prog))
    assert str(second / "libc1.so") in paths
    assert ldd(prog)["libc1.so"] == str(second / "libc1.so")


def test_glibc_hwcaps_subdirectory_is_preferred(app: Path) -> None:
    lib = app / "lib"
    v2 = lib / "glibc-hwcaps" / "x86-64-v2"
    v2.mkdir(parents=True)
    shared(v2 / "libb.so.1", "libb.so.1")
    prog = build_prog(app, "prog", "disable")
    with_v2, _ = ElfResolver(hwcaps=("x86-64-v2",)).libraries_of(str(prog))
    assert str(v2).replace(str(app / "lib"), str(app / "bin/../lib")) + "/libb.so.1" in with_v2
    baseline, _ = ElfResolver(hwcaps=()).libraries_of(str(prog))
    assert str(app / "bin/../lib/libb.so.1") in baseline
    if "x86-64-v2" in host_x86_hwcaps():
        host, _ = ElfResolver().libraries_of(str(prog))
        assert {os.path.realpath(p) for p in host} >= {str(v2 / "libb.so.1")}
        assert os.path.realpath(ldd(prog)["libb.so.1"]) == str(v2 / "libb.so.1")


def test_missing_library_is_reported_not_raised(app: Path) -> None:
    prog = build_prog(app, "prog", "disable")
    (app / "lib" / "libb.so.1.0").unlink()  # leaves libb.so.1 dangling
    closure = ElfResolver().closure([str(prog)])
    assert [(m.program, m.needed_by, m.name) for m in closure.missing] == [
        (str(prog), str(app / "bin/../lib/liba.so.1"), "libb.so.1")
    ]
    assert str(app / "lib" / "liba.so.1") in closure.files


def test_missing_and_unreadable_inputs_raise(tmp_path: Path) -> None:
    with pytest.raises(MissingError, match=r"nothing-here.*does not exist"):
        ElfResolver().closure([str(tmp_path / "nothing-here")])
    (tmp_path / "dangling").symlink_to("gone")
    with pytest.raises(MissingError, match="dangling"):
        ElfResolver().closure([str(tmp_path / "dangling")])
    broken = tmp_path / "broken"
    broken.write_bytes(b"\x7fELF\x02\x01\x01" + b"\0" * 9)  # a truncated ELF header
    with pytest.raises(MkmediaError, match="broken"):
        ElfResolver().closure([str(broken)])
    with pytest.raises(MkmediaError, match="not absolute"):
        ElfResolver().closure(["relative/prog"])


def test_shebang_scripts_pull_in_their_interpreter(tmp_path: Path) -> None:
    env_script = tmp_path / "tool"
    env_script.write_text("#!/usr/bin/env python3\nprint(1)\n")
    sh_script = tmp_path / "tool.sh"
    sh_script.write_text("#!/bin/sh -e\ntrue\n")
    resolver = ElfResolver()
    closure = resolver.closure([str(env_script), str(sh_script)])
    real = {os.path.realpath(p) for p in closure.files}
    python3 = resolver.paths.which("python3", resolver.path)
    assert python3 is not None
    assert os.path.realpath("/usr/bin/env") in real
    assert os.path.realpath(python3) in real
    assert os.path.realpath("/bin/sh") in real
    assert os.path.realpath("/lib64/ld-linux-x86-64.so.2") in real
    assert any(p.endswith("/libc.so.6") for p in real)
    lost = tmp_path / "lost"
    lost.write_text("#!/usr/bin/env no-such-interpreter-here\n")
    closure = resolver.closure([str(lost)])
    assert [m.name for m in closure.missing] == ["no-such-interpreter-here"]


def test_shebang_parsing() -> None:
    assert parse_shebang(b"#!/bin/sh -e\n") == ["/bin/sh", "-e"]
    assert parse_shebang(b"#! /usr/bin/perl\n") == ["/usr/bin/perl"]
    assert parse_shebang(b"\x7fELF") is None
    assert env_program(["python3"]) == "python3"
    assert env_program(["-S python3 -u"]) == "python3"
    assert env_program(["LANG=C perl"]) == "perl"


def test_dlopen_notes_are_read_and_followed(tmp_path: Path) -> None:
    payload = (
        '[{"feature":"zstd","description":"compression","priority":"recommended",'
        '"soname":["libzstd-not-here.so.9","libzstd.so.1"]},'
        '{"feature":"x","description":"never","priority":"suggested","soname":["libnope.so.0"]}]'
    )
    prog = note_program(tmp_path / "prog", payload)
    resolver = ElfResolver()
    plain = resolver.closure([str(prog)])
    assert [(n.feature, n.priority, n.sonames) for n in plain.dlopen] == [
        ("zstd", "recommended", ("libzstd-not-here.so.9", "libzstd.so.1")),
        ("x", "suggested", ("libnope.so.0",)),
    ]
    assert plain.dlopen[0].file == str(prog)
    assert not any("libzstd" in p for p in plain.files)
    followed = resolver.closure([str(prog)], dlopen_priorities={"required", "recommended"})
    assert any(p.endswith("/libzstd.so.1") for p in followed.files)
    assert followed.missing == []  # the suggested one is only offered


def test_find_libraries_by_name_and_glob(tmp_path: Path) -> None:
    resolver = ElfResolver()
    found, unmatched = resolver.find_libraries(
        ["libnss_files.so.2", "libnss_dns*.so.2", "libgcc_s.so.1", "libno-such-lib.so.7"]
    )
    names = {os.path.basename(p) for p in found}
    assert {"libnss_files.so.2", "libnss_dns.so.2", "libgcc_s.so.1"} <= names
    assert unmatched == ["libno-such-lib.so.7"]
    closure = resolver.closure(found)
    assert any(p.endswith("/libc.so.6") for p in closure.files)


def test_ld_so_conf_include_globs_inside_a_root(tmp_path: Path) -> None:
    write_files(
        tmp_path / "etc",
        {
            "ld.so.conf": "# comment\n/opt/one\ninclude\t/etc/ld.so.conf.d/*.conf\n",
            "ld.so.conf.d/b.conf": "/opt/three\n",
            "ld.so.conf.d/a.conf": "/opt/two/  # trailing slash\n/opt/one\n",
        },
    )
    assert read_ld_so_conf(RootPaths(tmp_path)) == ["/opt/one", "/opt/two", "/opt/three"]
    # A library found through the root's ld.so.conf is reported as a path inside the root.
    lib = tmp_path / "opt" / "two"
    lib.mkdir(parents=True)
    shared(lib / "libroot.so.1", "libroot.so.1")
    prog = cc(
        tmp_path / "prog",
        "int f(void); int main(void){return f();}",
        f"-L{lib}",
        "-l:libroot.so.1",
    )
    (tmp_path / "usr" / "bin").mkdir(parents=True)
    shutil.move(prog, tmp_path / "usr" / "bin" / "prog")
    resolver = ElfResolver(tmp_path)
    paths, missing = resolver.libraries_of("/usr/bin/prog")
    assert "/opt/two/libroot.so.1" in paths
    # The root has no libc nor loader: both are missing inside it.
    assert {name for _, name in missing} >= {"libc.so.6"}


def test_root_paths_resolve_like_chroot(tmp_path: Path) -> None:
    (tmp_path / "usr" / "lib").mkdir(parents=True)
    (tmp_path / "usr" / "lib" / "real").write_text("x")
    (tmp_path / "lib").symlink_to("usr/lib")
    (tmp_path / "usr" / "lib" / "abs").symlink_to("/lib/real")  # absolute: inside the root
    (tmp_path / "usr" / "lib" / "up").symlink_to("../../../../lib/real")  # ".." stops at root
    paths = RootPaths(tmp_path)
    assert paths.resolve("/lib/abs") == ("/usr/lib/real", ("/lib", "/usr/lib/abs", "/lib"))
    assert paths.realpath("/lib/up") == "/usr/lib/real"
    assert paths.realpath("/lib/none") is None
    assert stat.S_ISREG(os.stat(paths.host("/usr/lib/real")).st_mode)


def test_fast_reader_matches_pyelftools(tmp_path: Path) -> None:
    """read_elf (struct) and the pyelftools reference agree on real files and a dlopen note."""
    sample = [
        os.path.realpath(p) for p in ("/bin/sh", "/usr/bin/env", "/lib64/ld-linux-x86-64.so.2")
    ]
    sample += sorted(
        {os.path.realpath(str(p)) for p in Path("/usr/lib/x86_64-linux-gnu").glob("libc.so*")}
    )
    sample += sorted(str(p) for p in Path("/usr/bin").iterdir() if p.is_file())[:40:3]
    note = '[{"feature":"f","description":"d","priority":"required","soname":["libz.so.1"]}]'
    prog = note_program(tmp_path / "noted", note, "-Wl,-rpath,/a:/b")
    sample.append(str(prog))
    compared = 0
    for path in sample:
        fast = read_elf(path)
        assert fast == read_elf_pyelftools(path), path
        compared += fast is not None
    assert compared >= 5
    noted = read_elf(str(prog))
    assert noted is not None and noted.dlopen == (("f", "d", "required", ("libz.so.1",)),)
    assert (noted.runpath or noted.rpath) == ("/a", "/b")


def test_legacy_hwcaps_subdirectories_follow_the_loader(app: Path) -> None:
    """glibc 2.36 still searches tls/ and x86_64/ below each directory, tls first."""
    lib = app / "lib"
    for sub in ("x86_64", "tls"):
        (lib / sub).mkdir()
        shared(lib / sub / "libb.so.1", "libb.so.1")
    prog = build_prog(app, "prog", "disable")
    paths, _ = ElfResolver(hwcaps=()).libraries_of(str(prog))
    assert str(app / "bin/../lib/tls/libb.so.1") in paths
    assert ldd(prog)["libb.so.1"] == str(app / "bin/../lib/tls/libb.so.1")
    shutil.rmtree(lib / "tls")
    paths, _ = ElfResolver(hwcaps=()).libraries_of(str(prog))
    assert str(app / "bin/../lib/x86_64/libb.so.1") in paths
    assert ldd(prog)["libb.so.1"] == str(app / "bin/../lib/x86_64/libb.so.1")
    paths, _ = ElfResolver(hwcaps=(), legacy_hwcaps=False).libraries_of(str(prog))
    assert str(app / "bin/../lib/libb.so.1") in paths
