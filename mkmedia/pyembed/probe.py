"""Run by the TARGET interpreter (the one embedded into the rescue system), not by mkmedia.

`python -S -s probe.py MODE < request.json > answer.json`, MODE one of:

- `info`: the interpreter's version, prefix, stdlib and lib-dynload directories, built-in
  module names, the standard library's module names;
- `closure`: the modules that a set of root modules and packages import, transitively, found
  with an `ast` scan (imports inside functions count, `if __name__ == "__main__":` and
  `if TYPE_CHECKING:` bodies do not), resolved with this interpreter's own path finder
  without importing anything;
- `compile`: compile sources to unchecked-hash .pyc files (no mtime inside) with this
  interpreter's magic number.

Standard library only, no mkmedia imports, and syntax the oldest supported CPython (3.8) reads:
this file is copied to nowhere, it is executed by whatever interpreter the recipe names.
"""

from __future__ import annotations

import ast
import importlib.machinery
import json
import os
import py_compile
import re
import sys
import sysconfig
from typing import Any

try:
    import _imp
except ImportError:  # pragma: no cover - every CPython has it
    _imp = None  # type: ignore[assignment]

# The module search path of the interpreter without site-packages (we run with -S) and without
# this script's directory, which Python put in front.
STD_PATH = [p for p in sys.path[1:] if p]


class Module:
    """Where one importable module comes from."""

    __slots__ = ("is_package", "kind", "locations", "name", "origin")

    def __init__(
        self,
        name: str,
        kind: str,
        origin: str | None = None,
        is_package: bool = False,
        locations: list[str] | None = None,
    ) -> None:
        self.name = name
        # builtin | frozen | source | bytecode | extension | namespace
        self.kind = kind
        self.origin = origin
        self.is_package = is_package
        self.locations = locations or []

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "origin": self.origin,
            "is_package": self.is_package,
        }


class Resolver:
    """Find modules like the import system would, but without executing any of them.

    `roots` maps top-level package names that are not in the standard library (our own
    packages) to the directory that holds them.
    """

    def __init__(self, roots: dict[str, str] | None = None) -> None:
        self.roots = dict(roots or {})
        self.builtins = set(sys.builtin_module_names)
        self.cache: dict[str, Module | None] = {}

    def find(self, name: str) -> Module | None:
        if name in self.cache:
            return self.cache[name]
        found = self._find(name)
        self.cache[name] = found
        return found

    def _find(self, name: str) -> Module | None:
        parent, _, _ = name.rpartition(".")
        if parent:
            pmod = self.find(parent)
            if pmod is None or not pmod.is_package:
                return None
            path = pmod.locations
        elif name in self.builtins:
            return Module(name, "builtin")
        elif name in self.roots:
            path = [self.roots[name]]
        else:
            path = STD_PATH
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None:
            if _imp is not None and _imp.is_frozen(name):
                return Module(name, "frozen")
            return None
        locations = spec.submodule_search_locations
        is_package = locations is not None
        loader = spec.loader
        if is_package and (spec.origin is None or spec.origin == "namespace"):
            return Module(name, "namespace", None, True, list(locations or []))
        if isinstance(loader, importlib.machinery.ExtensionFileLoader):
            kind = "extension"
        elif isinstance(loader, importlib.machinery.SourcelessFileLoader):
            kind = "bytecode"
        elif isinstance(loader, importlib.machinery.SourceFileLoader):
            kind = "source"
        else:
            return None
        return Module(name, kind, spec.origin, is_package, list(locations or []))


# ----------------------------------------------------------------------------------------------
# Import scanning


def _is_main_guard(test: ast.expr) -> bool:
    """`if __name__ == "__main__":` (either operand order)."""
    if not isinstance(test, ast.Compare) or len(test.ops) != 1:
        return False
    if not isinstance(test.ops[0], ast.Eq):
        return False
    sides = [test.left, test.comparators[0]]
    names = [s for s in sides if isinstance(s, ast.Name) and s.id == "__name__"]
    consts = [s for s in sides if isinstance(s, ast.Constant) and s.value == "__main__"]
    return len(names) == 1 and len(consts) == 1


def _is_type_checking(test: ast.expr) -> bool:
    """`if TYPE_CHECKING:` or `if typing.TYPE_CHECKING:`: never true at run time."""
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


FUNCTION_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef)
# Statement fields that hold nested statements (try handlers and match cases hold more).
BODY_FIELDS = ("body", "orelse", "finalbody", "handlers", "cases")
LAZY_IMPORT_CALLS = ("__import__", "import_module")
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Codecs named by literal strings: "x".encode("idna"), codecs.lookup("punycode"),
# open(..., encoding="latin-1"). Codec modules are imported by name at run time (a text
# search over-approximates, and codec modules are small).
CODEC_NAMES = re.compile(
    r"""(?:\.(?:en|de)code\(|lookup\(|encoding\s*=\s*)\s*['"]([A-Za-z0-9_.-]+)['"]"""
)


def codec_modules(text: str) -> list[str]:
    """The `encodings.*` modules behind the codec names a source mentions."""
    try:
        import encodings
        from encodings.aliases import aliases
    except ImportError:  # pragma: no cover - part of every CPython
        return []
    found = set()
    for name in CODEC_NAMES.findall(text):
        norm = encodings.normalize_encoding(name).lower()
        module = aliases.get(norm) or aliases.get(norm.replace(".", "_")) or norm
        found.add("encodings." + module.replace(".", "_"))
    return sorted(found)


class ImportScanner:
    """Collect (name, line, is_member) for every import a module can execute.

    `is_member` marks `from X import name`: `X.name` is a submodule only if it resolves as one,
    otherwise it is an attribute and not an import at all. Only statements are walked
    (imports are statements); expressions are searched for literal lazy imports
    (`__import__("x")`, `importlib.import_module("x")`) only when the source mentions them.
    """

    def __init__(self, module: str, is_package: bool, skip_functions: set[str]) -> None:
        self.package = module if is_package else module.rpartition(".")[0]
        self.skip_functions = skip_functions
        self.found: list[tuple[str, int, bool]] = []

    def scan(self, tree: ast.Module, lazy_calls: bool) -> None:
        body = [
            stmt
            for stmt in tree.body
            if not (isinstance(stmt, FUNCTION_DEFS) and stmt.name in self.skip_functions)
        ]
        self._statements(body)
        if lazy_calls:
            for stmt in body:
                for node in ast.walk(stmt):
                    if isinstance(node, ast.Call):
                        self._call(node)

    def _statements(self, body: list[Any]) -> None:
        for stmt in body:
            if isinstance(stmt, ast.Import):
                for alias in stmt.names:
                    self.found.append((alias.name, stmt.lineno, False))
            elif isinstance(stmt, ast.ImportFrom):
                self._import_from(stmt)
            elif isinstance(stmt, ast.If) and (
                _is_main_guard(stmt.test) or _is_type_checking(stmt.test)
            ):
                self._statements(stmt.orelse)
            else:
                for name in BODY_FIELDS:
                    nested = getattr(stmt, name, None)
                    if nested:
                        self._statements(nested)

    def _import_from(self, node: ast.ImportFrom) -> None:
        base = self._absolute(node.module or "", node.level)
        if base is None:
            return
        if base:
            self.found.append((base, node.lineno, False))
        for alias in node.names:
            if alias.name != "*":
                name = f"{base}.{alias.name}" if base else alias.name
                self.found.append((name, node.lineno, True))

    def _call(self, node: ast.Call) -> None:
        func = node.func
        called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
        if called in LAZY_IMPORT_CALLS and node.args:
            arg = node.args[0]
            literal = arg.value if isinstance(arg, ast.Constant) else None
            if isinstance(literal, str) and literal and not literal.startswith("."):
                self.found.append((literal, node.lineno, False))

    def _absolute(self, module: str, level: int) -> str | None:
        if level == 0:
            return module
        parts = self.package.split(".") if self.package else []
        if level - 1 > len(parts):
            return None  # beyond the top-level package: an error at run time anyway
        base = ".".join(parts[: len(parts) - (level - 1)])
        return f"{base}.{module}" if module and base else (base or module)


def script_only_functions(tree: ast.Module, lines: list[str]) -> set[str]:
    """Top-level functions that only `if __name__ == "__main__":` blocks reach.

    Stdlib modules keep their command-line code in such functions (`pickle._test` imports
    doctest, `random._test` reaches `statistics` through `_test_generator`, ...): it never
    runs when the module is imported. A function is script-only when the guards or other
    script-only functions mention its name and no other line of the module does (a textual
    test: a mention in a comment or string keeps the function, which errs on the safe side).
    """
    guards = [n for n in tree.body if isinstance(n, ast.If) and _is_main_guard(n.test)]
    if not guards:
        return set()
    defs = {n.name: n for n in tree.body if isinstance(n, FUNCTION_DEFS)}

    def span(node: ast.stmt) -> range:
        start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        return range(start - 1, (node.end_lineno or node.lineno))

    words = [set(IDENTIFIER.findall(line)) for line in lines]
    script_only: set[str] = set()
    changed = True
    while changed:
        changed = False
        reaching = [span(g) for g in guards] + [span(defs[s]) for s in script_only]
        reached = set().union(*(words[i] for rows in reaching for i in rows))
        for name, node in defs.items():
            if name in script_only or name not in reached:
                continue
            inside = set(span(node)).union(*reaching)
            if not any(name in words[i] for i in range(len(lines)) if i not in inside):
                script_only.add(name)
                changed = True
    return script_only


def scan_imports(
    source: bytes, filename: str, module: str, is_package: bool, *, script_code: bool = True
) -> list[Any]:
    """Imports of one module; without `script_code`, skip code only `__main__` runs."""
    tree = ast.parse(source, filename)
    text = source.decode("utf-8", "replace")
    skip = set() if script_code else script_only_functions(tree, text.splitlines())
    scanner = ImportScanner(module, is_package, skip)
    scanner.scan(tree, lazy_calls=any(call in text for call in LAZY_IMPORT_CALLS))
    # A codec that does not exist resolves to no module and is dropped as an attribute is.
    scanner.found.extend((m, 0, True) for m in codec_modules(text))
    return scanner.found


class ScanCache:
    """Scan results kept in a JSON file between runs, keyed by module, file, size and mtime.

    Parsing is the expensive part of a closure (seconds for the standard library), and the
    standard library does not change between builds.
    """

    FORMAT = 1

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.entries: dict[str, list[Any]] = {}
        self.changed = False
        if path and os.path.isfile(path):
            try:
                with open(path) as f:
                    data = json.load(f)
            except (OSError, ValueError):
                data = {}  # unreadable: start afresh, it is only a cache
            if data.get("format") == self.FORMAT and data.get("python") == sys.version:
                self.entries = data.get("entries", {})

    def scan(self, name: str, origin: str, is_package: bool, script_code: bool) -> list[Any]:
        st = os.stat(origin)
        key = f"{name}|{origin}|{int(is_package)}|{int(script_code)}"
        stamp = [st.st_size, st.st_mtime_ns]
        entry = self.entries.get(key)
        if entry is not None and entry[0] == stamp:
            return [tuple(found) for found in entry[1]]
        with open(origin, "rb") as f:
            source = f.read()
        found = scan_imports(source, origin, name, is_package, script_code=script_code)
        self.entries[key] = [stamp, found]
        self.changed = True
        return found

    def save(self) -> None:
        if not self.path or not self.changed:
            return
        data = {"format": self.FORMAT, "python": sys.version, "entries": self.entries}
        tmp = f"{self.path}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            json.dump(data, f)
        os.replace(tmp, self.path)


def _excluded(name: str, excludes: set[str]) -> bool:
    parts = name.split(".")
    return any(".".join(parts[:i]) in excludes for i in range(1, len(parts) + 1))


def _package_modules(resolver: Resolver, package: str) -> list[str]:
    """Every module of one of our packages (all of it is embedded, used or not)."""
    mod = resolver.find(package)
    if mod is None:
        return []
    names = [package]
    if not mod.is_package:
        return names
    for location in mod.locations:
        for dirpath, dirnames, filenames in os.walk(location):
            # Only regular subpackages; never caches, tests or data directories.
            dirnames[:] = sorted(
                d
                for d in dirnames
                if d.isidentifier() and os.path.isfile(os.path.join(dirpath, d, "__init__.py"))
            )
            rel = os.path.relpath(dirpath, location)
            prefix = package if rel == "." else package + "." + rel.replace(os.sep, ".")
            if prefix != package:
                names.append(prefix)
            for filename in sorted(filenames):
                stem, ext = os.path.splitext(filename)
                if ext == ".py" and stem != "__init__" and stem.isidentifier():
                    names.append(f"{prefix}.{stem}")
    return names


def implied_modules() -> dict[str, list[str]]:
    """Imports made with computed names that a scan cannot see, per importing module."""
    implied: dict[str, list[str]] = {}
    name = getattr(sysconfig, "_get_sysconfigdata_name", lambda: "")()
    if name:
        implied["sysconfig"] = [name]  # the build's configuration, imported by name
    return implied


def closure(request: dict[str, Any]) -> dict[str, Any]:
    """The transitive import closure of `packages`, `modules` and `startup` modules.

    Imports made by our `packages` are always followed; `excludes` only cut edges inside the
    standard library (optional imports that have a fallback or serve development tools).
    """
    roots = {k: str(v) for k, v in request.get("roots", {}).items()}
    resolver = Resolver(roots)
    excludes = set(request.get("excludes", []))
    stdlib_names = set(getattr(sys, "stdlib_module_names", ()))
    packages = list(request.get("packages", []))
    forced_roots: list[str] = []
    for package in packages:
        names = _package_modules(resolver, package)
        if not names:
            raise SystemExit(f"pyembed_probe: package {package!r} not found in {roots}")
        forced_roots.extend(names)
    # The caller's explicit modules must exist; startup modules are best effort.
    missing_explicit = [m for m in request.get("modules", []) if resolver.find(m) is None]
    if missing_explicit:  # the caller fails anyway: do not scan
        return {
            "modules": [],
            "unresolved": {},
            "foreign": [],
            "missing_explicit": missing_explicit,
        }
    forced_roots.extend(request.get("modules", []))
    optional_roots = [m for m in request.get("startup", []) if not _excluded(m, excludes)]

    own_tops = set(packages)
    result: dict[str, Module] = {}
    unresolved: dict[str, list[str]] = {}
    foreign: list[list[Any]] = []  # imports of our packages that are neither ours nor stdlib
    todo: list[tuple[str, str]] = [(m, "") for m in forced_roots + optional_roots]
    implied_by = implied_modules()
    cache = ScanCache(request.get("cache"))
    via: dict[str, str] = {}  # module -> the first module seen importing it (for reports)

    while todo:
        name, importer = todo.pop()
        if name in result:
            continue
        mod = resolver.find(name)
        if mod is None:
            continue
        result[name] = mod
        via[name] = importer
        # A module implies its parent packages (their __init__ runs first).
        for i in range(1, name.count(".") + 1):
            todo.append((name.rsplit(".", i)[0], name))
        todo.extend((implied, name) for implied in implied_by.get(name, ()))
        if mod.kind != "source" or mod.origin is None:
            continue
        ours = name.split(".")[0] in own_tops
        scanned = cache.scan(name, mod.origin, mod.is_package, ours)
        for target, line, is_member in scanned:
            if not ours and _excluded(target, excludes):
                continue
            if resolver.find(target) is not None:
                todo.append((target, name))
            elif is_member:
                continue  # `from X import attribute`
            else:
                where = f"{mod.origin}:{line}"
                unresolved.setdefault(target, []).append(where)
                top = target.split(".")[0]
                if ours and top not in stdlib_names and top not in own_tops:
                    foreign.append([target, mod.origin, line])
    cache.save()
    return {
        "modules": [dict(result[k].as_dict(), via=via[k]) for k in sorted(result)],
        "unresolved": {k: sorted(v) for k, v in sorted(unresolved.items())},
        "foreign": foreign,
        "missing_explicit": missing_explicit,
    }


# ----------------------------------------------------------------------------------------------
# Interpreter facts and compilation


def _lib_dynload() -> str:
    dest = sysconfig.get_config_var("DESTSHARED")
    if dest and os.path.isdir(dest):
        return str(dest)
    for entry in STD_PATH:
        if os.path.basename(entry) == "lib-dynload":
            return entry
    return ""


def info(request: dict[str, Any]) -> dict[str, Any]:
    del request
    v = sys.version_info
    return {
        "version": f"{v[0]}.{v[1]}.{v[2]}",
        "major": v[0],
        "minor": v[1],
        "implementation": sys.implementation.name,
        "executable": sys.executable,
        "prefix": sys.prefix,
        "exec_prefix": sys.exec_prefix,
        "base_prefix": sys.base_prefix,
        "platlibdir": getattr(sys, "platlibdir", "lib"),
        "stdlib": sysconfig.get_paths()["stdlib"],
        "lib_dynload": _lib_dynload(),
        "path": STD_PATH,
        "builtin_modules": sorted(sys.builtin_module_names),
        "stdlib_module_names": sorted(getattr(sys, "stdlib_module_names", ())),
        "extension_suffixes": importlib.machinery.EXTENSION_SUFFIXES,
        "sysconfigdata": getattr(sysconfig, "_get_sysconfigdata_name", lambda: "")(),
    }


def compile_all(request: dict[str, Any]) -> dict[str, Any]:
    """Compile [source, pyc, display name] triples; unchecked-hash pycs carry no mtime."""
    mode = py_compile.PycInvalidationMode.UNCHECKED_HASH
    for source, cfile, dfile in request["items"]:
        py_compile.compile(source, cfile, dfile, doraise=True, invalidation_mode=mode)
    return {"compiled": len(request["items"])}


MODES = {"info": info, "closure": closure, "compile": compile_all}


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[1] not in MODES:
        print(f"usage: {argv[0]} {'|'.join(MODES)} < request.json", file=sys.stderr)
        return 2
    if sys.version_info < (3, 8):  # noqa: UP036 - run by the target, maybe an old one
        print("pyembed_probe: CPython 3.8 or newer is needed", file=sys.stderr)
        return 3
    request = json.load(sys.stdin)
    json.dump(MODES[argv[1]](request), sys.stdout, sort_keys=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
