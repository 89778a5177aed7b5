"""Embed a trimmed copy of the host's CPython and `rescue_runtime` into the rescue tree.

The rescue system carries the host's own interpreter binary, the extension modules and the
pure-Python standard-library modules that our packages can import (nothing more), compiled to
unchecked-hash .pyc files inside `{prefix}/{platlibdir}/python3XY.zip`: the archive CPython's
path computation looks for first, so with it in place the interpreter finds its prefix
without any environment variable. Extension modules stay files in
`{exec_prefix}/{platlibdir}/python3.X/lib-dynload` (shared objects cannot be imported from a
zip); their shared libraries are the rootfs assembler's job (`EmbeddedPython.elf_files`).

Every fact about the interpreter comes from running the TARGET interpreter
(`probe.py`), never from the Python that runs mkmedia.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import stat
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from mkmedia.pyembed.archive import ZipEntry, write_zip
from rescue_runtime import atomic
from rescue_runtime.errors import ConfigError, MissingError, MkmediaError
from rescue_runtime.run import run, which

log = logging.getLogger("mkmedia.pyembed")

PROBE = Path(__file__).with_name("probe.py")

# Leaves of the standard library that are imported only by code paths the rescue system never
# takes; the closure does not follow imports into them unless our own packages import them.
DEFAULT_EXCLUDES: tuple[str, ...] = (
    "pydoc",  # help() in the interactive interpreter (pulls in http.server, email, ...)
    "pydoc_data",
    "readline",  # interactive line editing: libreadline + libtinfo
    "rlcompleter",
    "sitecustomize",  # the host's customisation (Debian's hooks apport)
    "usercustomize",
    "_hashlib",  # OpenSSL hashes: hashlib falls back to the built-in _sha2/_md5/_blake2
    "importlib.metadata",  # distribution lookups (email, csv, zipfile behind them)
    "tracemalloc",  # only with -X tracemalloc
    # Development tools that a stray import must not drag in.
    "doctest",
    "pdb",
    "unittest",
    "test",
    "idlelib",
    "tkinter",
    "turtle",
    "turtledemo",
    "lib2to3",
    "ensurepip",
    "venv",
    "distutils",
)

# Modules the interpreter or its users load by computed name, on top of the measured start-up
# set: the codecs behind the C locale, UTF-8 mode, zip member names (cp437), host names (idna),
# and `python -m` (runpy).
STARTUP_EXTRAS: tuple[str, ...] = (
    "encodings",
    "encodings.aliases",
    "encodings.ascii",
    "encodings.latin_1",
    "encodings.utf_8",
    "encodings.utf_8_sig",
    "encodings.cp437",
    "encodings.idna",
    "encodings.raw_unicode_escape",
    "encodings.unicode_escape",
    "runpy",
)

# Interpreter start-up variants whose sys.modules together make the measured start-up set.
STARTUP_FLAGS: tuple[tuple[str, ...], ...] = ((), ("-I",), ("-S",), ("-E",), ("-s",))

DEFAULT_SCRIPTS: tuple[tuple[str, str], ...] = (("mkmedia", "rescue_runtime.cli:main"),)

# The probe must see the interpreter as the rescue system will: no PYTHON* variables from the
# build environment (an empty value counts as unset); a fixed hash seed makes the .pyc files
# reproducible (frozenset constants are marshalled in iteration order).
PROBE_ENV: dict[str, str] = {
    "PYTHONPATH": "",
    "PYTHONHOME": "",
    "PYTHONSTARTUP": "",
    "PYTHONOPTIMIZE": "",
    "PYTHONWARNINGS": "",
    "PYTHONPYCACHEPREFIX": "",
    "PYTHONUSERBASE": "",
    "PYTHONNOUSERSITE": "1",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONHASHSEED": "0",
    "LC_ALL": "C.UTF-8",
}


@dataclass(frozen=True)
class InterpreterInfo:
    """What the target interpreter says about itself (`probe.py info`)."""

    python: str
    version: str
    major: int
    minor: int
    executable: str
    base_prefix: str
    base_exec_prefix: str
    platlibdir: str
    stdlib: str
    lib_dynload: str
    builtin_modules: frozenset[str]
    stdlib_module_names: frozenset[str]

    @property
    def zip_path(self) -> PurePosixPath:
        """The first sys.path entry and getpath's prefix landmark."""
        name = f"python{self.major}{self.minor}.zip"
        return PurePosixPath(self.base_prefix, self.platlibdir, name)

    @property
    def dynload_path(self) -> PurePosixPath:
        """Where getpath looks for extension modules (its exec_prefix landmark)."""
        sub = f"python{self.major}.{self.minor}"
        return PurePosixPath(self.base_exec_prefix, self.platlibdir, sub, "lib-dynload")


@dataclass(frozen=True)
class ModuleSource:
    name: str
    kind: str  # builtin | frozen | source | bytecode | extension | namespace
    origin: str | None
    is_package: bool
    via: str  # the first module seen importing it ("" for roots)

    @property
    def arcname(self) -> str:
        """Its member name in the zip, as zipimport looks for it."""
        base = self.name.replace(".", "/")
        return f"{base}/__init__.pyc" if self.is_package else f"{base}.pyc"


@dataclass(frozen=True)
class Closure:
    modules: tuple[ModuleSource, ...]
    # Imported names that this interpreter cannot find, with where they are imported (mostly
    # other platforms' modules behind try/except or platform checks).
    unresolved: dict[str, tuple[str, ...]]

    def by_kind(self, *kinds: str) -> list[ModuleSource]:
        return [m for m in self.modules if m.kind in kinds]

    @property
    def names(self) -> frozenset[str]:
        return frozenset(m.name for m in self.modules)


@dataclass(frozen=True)
class EmbeddedPython:
    """What embed_python put into the tree. Paths are as seen inside the rescue system; they
    are also the host paths the files were copied from (`tree` + path is the copy)."""

    tree: Path
    version: str
    interpreter: PurePosixPath  # the real binary
    links: tuple[PurePosixPath, ...]  # symlinks leading to it (/usr/bin/python3)
    zip_path: PurePosixPath
    lib_dynload: PurePosixPath
    extension_modules: tuple[PurePosixPath, ...]
    scripts: tuple[PurePosixPath, ...]
    modules: tuple[str, ...]  # pure-Python modules in the zip
    builtin_modules: tuple[str, ...]  # built into the binary and used
    unresolved: dict[str, tuple[str, ...]] = field(repr=False)
    zip_size: int
    extensions_size: int
    interpreter_size: int

    @property
    def elf_files(self) -> tuple[PurePosixPath, ...]:
        """ELF files whose shared libraries the rootfs must provide."""
        return (self.interpreter, *self.extension_modules)

    def in_tree(self, path: PurePosixPath) -> Path:
        return self.tree / path.relative_to("/")

    @property
    def total_size(self) -> int:
        return self.zip_size + self.extensions_size + self.interpreter_size

    def summary(self) -> str:
        return (
            f"Python {self.version}: {len(self.modules)} modules in {self.zip_path} "
            f"({self.zip_size / 1e6:.2f} MB), {len(self.extension_modules)} extension modules "
            f"({self.extensions_size / 1e6:.2f} MB), interpreter {self.interpreter} "
            f"({self.interpreter_size / 1e6:.2f} MB)"
        )


# ----------------------------------------------------------------------------------------------
# Asking the target interpreter


def probe(python: str, mode: str, request: dict[str, Any]) -> dict[str, Any]:
    """Run probe.py in `mode` under the target interpreter and return its answer."""
    result = run(
        [python, "-S", "-s", str(PROBE), mode],
        input=json.dumps(request),
        env=PROBE_ENV,
        what=f"asking {python} about its modules ({mode})",
    )
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer


def interpreter_info(python: str) -> InterpreterInfo:
    raw = probe(python, "info", {})
    if raw["implementation"] != "cpython":
        raise ConfigError(
            f"The rescue interpreter {python} is {raw['implementation']}, not CPython: "
            "only CPython's start-up (zip landmark, lib-dynload) is supported.",
            hint="Name a CPython interpreter in the recipe.",
        )
    return InterpreterInfo(
        python=python,
        version=raw["version"],
        major=raw["major"],
        minor=raw["minor"],
        executable=raw["executable"],
        base_prefix=raw["base_prefix"],
        base_exec_prefix=raw.get("base_exec_prefix") or raw["exec_prefix"],
        platlibdir=raw["platlibdir"],
        stdlib=raw["stdlib"],
        lib_dynload=raw["lib_dynload"],
        builtin_modules=frozenset(raw["builtin_modules"]),
        stdlib_module_names=frozenset(raw["stdlib_module_names"]),
    )


def startup_modules(python: str) -> list[str]:
    """The modules the interpreter imports before running any code, measured.

    Union of sys.modules at start-up over the usual flag variants (normal, -I, -S, -E, -s).
    """
    code = "import sys; print('\\n'.join(sys.modules))"
    found: set[str] = set()
    for flags in STARTUP_FLAGS:
        result = run(
            [python, *flags, "-c", code],
            env=PROBE_ENV,
            what=f"listing the modules {python} loads at start-up",
        )
        found.update(line.strip() for line in result.stdout.splitlines() if line.strip())
    found.discard("__main__")
    return sorted(found)


def package_roots(packages: Sequence[str]) -> dict[str, str]:
    """Where the packages to embed live: located by the builder's own import system."""
    roots: dict[str, str] = {}
    for package in packages:
        if "." in package:
            raise ConfigError(
                f"Cannot embed {package!r}: name a top-level package (all of it is embedded)."
            )
        spec = importlib.util.find_spec(package)
        if spec is None or spec.origin is None:
            raise MissingError(
                f"The package {package!r} to embed into the rescue system cannot be found by "
                "mkmedia's Python.",
                hint="Install it next to mkmedia (pip install -e .) or fix the recipe.",
            )
        origin = Path(spec.origin)
        # A package's origin is its __init__.py; a single module's is the file itself.
        top = origin.parent if spec.submodule_search_locations is not None else origin
        roots[package] = str(top.parent)
    return roots


def module_closure(
    python: str,
    *,
    packages: Sequence[str],
    extra_modules: Sequence[str] = (),
    startup: Sequence[str] = (),
    excludes: Sequence[str] = DEFAULT_EXCLUDES,
    scan_cache: Path | None = None,
) -> Closure:
    """Everything `packages`, `extra_modules` and the start-up set import, transitively.

    `scan_cache` names a file where the scan results are kept between runs (it is created;
    entries are checked against each file's size and mtime).
    """
    raw = probe(
        python,
        "closure",
        {
            "roots": package_roots(packages),
            "packages": list(packages),
            "modules": list(extra_modules),
            "startup": [*startup, *STARTUP_EXTRAS],
            "excludes": list(excludes),
            "cache": str(scan_cache) if scan_cache else None,
        },
    )
    if raw["missing_explicit"]:
        names = ", ".join(raw["missing_explicit"])
        raise ConfigError(
            f"The extra Python module(s) {names} named for the rescue system do not exist "
            f"for {python}.",
            hint="Check the spelling in the recipe, or install the module on this host.",
        )
    if raw["foreign"]:
        lines = "; ".join(f"{name} ({path}:{line})" for name, path, line in raw["foreign"])
        raise MkmediaError(
            f"The rescue runtime imports modules that are neither in the standard library of "
            f"{python} nor in the embedded packages: {lines}.",
            hint="The rescue runtime must use the standard library only; remove the import.",
        )
    modules = tuple(
        ModuleSource(m["name"], m["kind"], m["origin"], m["is_package"], m["via"])
        for m in raw["modules"]
    )
    unresolved = {k: tuple(v) for k, v in raw["unresolved"].items()}
    return Closure(modules, unresolved)


def compile_modules(
    python: str, modules: Sequence[ModuleSource], zip_path: PurePosixPath, workdir: Path
) -> list[ZipEntry]:
    """Compile source modules with the target interpreter; return the zip members."""
    items: list[list[str]] = []
    entries: list[ZipEntry] = []
    for mod in modules:
        if mod.origin is None:
            continue
        if mod.kind == "bytecode":
            entries.append(ZipEntry(mod.arcname, Path(mod.origin)))
            continue
        cfile = workdir / mod.arcname
        cfile.parent.mkdir(parents=True, exist_ok=True)
        # The name tracebacks show: where zipimport says the module lives (reproducible,
        # unlike the build machine's checkout path).
        dfile = f"{zip_path}/{mod.arcname[:-1]}"
        items.append([mod.origin, str(cfile), dfile])
        entries.append(ZipEntry(mod.arcname, cfile))
    probe(python, "compile", {"items": items})
    return entries


# ----------------------------------------------------------------------------------------------
# Writing into the tree


def _tree_path(tree: Path, path: PurePosixPath | str) -> Path:
    return tree / PurePosixPath(path).relative_to("/")


def copy_file(src: Path, dest: Path, mode: int | None = None) -> None:
    """Copy through a temporary name, so a file in the tree is never half-written."""
    chosen = stat.S_IMODE(src.stat().st_mode) if mode is None else mode
    atomic.copy_file(src, dest, mode=chosen, durable=False)


def _symlink(tree: Path, link: PurePosixPath, target: str) -> None:
    dest = _tree_path(tree, link)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_symlink() or dest.exists():
        dest.unlink()
    dest.symlink_to(target)


def copy_interpreter(
    python: str, tree: Path
) -> tuple[PurePosixPath, tuple[PurePosixPath, ...], PurePosixPath]:
    """Copy the interpreter binary and the symlinks leading to it, at the host's paths.

    Returns (binary, links, canonical path of `python`). Directory symlinks on the way
    (/bin -> usr/bin) are resolved first: the rootfs recreates those itself.
    """
    start = Path(python)
    if not start.is_absolute():
        found = which(python)
        if found is None:
            raise MissingError(f"The rescue interpreter {python!r} is not on PATH.")
        start = Path(found)
    current = PurePosixPath(os.path.realpath(start.parent), start.name)
    canonical = current
    links: list[PurePosixPath] = []
    while os.path.islink(current):
        if current in links:
            raise MissingError(f"The interpreter path {python} is a symlink loop.")
        target = os.readlink(current)
        _symlink(tree, current, target)
        links.append(current)
        joined = os.path.normpath(os.path.join(current.parent, target))
        # The next hop's own directory may again be a symlink.
        current = PurePosixPath(os.path.realpath(os.path.dirname(joined)), os.path.basename(joined))
    if not os.path.isfile(current):
        raise MissingError(f"The rescue interpreter {python} ({current}) does not exist.")
    copy_file(Path(current), _tree_path(tree, current))
    return current, tuple(links), canonical


def write_script(
    tree: Path, name: str, entry_point: str, shebang: PurePosixPath, mtime: int | None
) -> PurePosixPath:
    """A console script like pip's, for the rescue system's PATH."""
    module, _, func = entry_point.partition(":")
    if not module or not func.isidentifier():
        raise ConfigError(f"The entry point {entry_point!r} is not of the form 'module:func'.")
    text = (
        f"#!{shebang}\n"
        f'"""{name} in the rescue system (written by mkmedia.pyembed)."""\n'
        "import sys\n\n"
        f"from {module} import {func}\n\n"
        f"sys.exit({func}())\n"
    )
    path = PurePosixPath("/usr/bin", name)
    dest = _tree_path(tree, path)
    with atomic.atomic_path(dest, durable=False, mode=0o755) as tmp:
        tmp.write_text(text)
        if mtime is not None:
            os.utime(tmp, (mtime, mtime))
    return path


def embed_python(
    tree: Path,
    *,
    python: str = "/usr/bin/python3",
    packages: Sequence[str] = ("rescue_runtime",),
    extra_modules: Sequence[str] = (),
    source_date_epoch: int | None = None,
    excludes: Sequence[str] = DEFAULT_EXCLUDES,
    scripts: Sequence[tuple[str, str]] = DEFAULT_SCRIPTS,
    compress: bool = True,
    scan_cache: Path | None = None,
) -> EmbeddedPython:
    """Put the interpreter, the module closure of `packages` and the scripts into `tree`.

    `excludes` cuts the standard library's optional imports (see DEFAULT_EXCLUDES); our own
    packages' imports are always followed. `compress=False` stores the zip members (larger in
    the rescue system's RAM, but compresses better inside a zstd initrd). `scan_cache`: a
    file keeping the import scan between builds (see module_closure).
    """
    tree = Path(tree)
    info = interpreter_info(python)
    startup = startup_modules(python)
    closure = module_closure(
        python,
        packages=packages,
        extra_modules=extra_modules,
        startup=startup,
        excludes=excludes,
        scan_cache=scan_cache,
    )
    for name, entry in scripts:
        module = entry.partition(":")[0]
        if module not in closure.names:
            raise ConfigError(
                f"The rescue script {name!r} runs {entry}, but {module!r} is not among the "
                "embedded modules.",
                hint="Add its package to the packages to embed.",
            )

    zip_dest = _tree_path(tree, info.zip_path)
    zip_dest.parent.mkdir(parents=True, exist_ok=True)
    pure = closure.by_kind("source", "bytecode")
    with tempfile.TemporaryDirectory(prefix="mkmedia-pyembed-") as work:
        entries = compile_modules(python, pure, info.zip_path, Path(work))
        dirs = [f"{m.name.replace('.', '/')}/" for m in closure.by_kind("namespace")]
        write_zip(zip_dest, entries, dirs, source_date_epoch=source_date_epoch, compress=compress)

    # Extension modules: files in the lib-dynload directory getpath expects (created even when
    # empty: it is the exec_prefix landmark).
    dynload = info.dynload_path
    _tree_path(tree, dynload).mkdir(parents=True, exist_ok=True)
    extensions: list[PurePosixPath] = []
    for mod in closure.by_kind("extension"):
        assert mod.origin is not None
        origin = Path(mod.origin)
        if str(origin.parent) != info.lib_dynload:
            raise MkmediaError(
                f"The extension module {mod.name} ({origin}) is not in {info.lib_dynload}, "
                "so it cannot be placed where the embedded interpreter looks for it.",
                hint=f"Leave it out (excludes) or file a bug naming {python}.",
            )
        dest = dynload / origin.name
        copy_file(origin, _tree_path(tree, dest))
        extensions.append(dest)

    binary, links, canonical = copy_interpreter(python, tree)
    written = tuple(
        write_script(tree, name, entry, canonical, source_date_epoch) for name, entry in scripts
    )

    result = EmbeddedPython(
        tree=tree,
        version=info.version,
        interpreter=binary,
        links=links,
        zip_path=info.zip_path,
        lib_dynload=dynload,
        extension_modules=tuple(sorted(extensions)),
        scripts=written,
        modules=tuple(sorted(m.name for m in pure)),
        builtin_modules=tuple(sorted(m.name for m in closure.by_kind("builtin"))),
        unresolved=closure.unresolved,
        zip_size=zip_dest.stat().st_size,
        extensions_size=sum(_tree_path(tree, p).stat().st_size for p in extensions),
        interpreter_size=_tree_path(tree, binary).stat().st_size,
    )
    log.info("%s", result.summary())
    return result
