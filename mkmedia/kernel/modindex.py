"""One kernel's module index (modules.dep, softdep, weakdep, alias, builtin) read as modprobe does.

Names are compared the way kmod compares them: "-" and "_" are the same in module names and
in aliases (outside [...] character classes). A name resolves to a module file, to a module
built into the kernel (satisfied with no file), or through modules.alias (and the builtin
modules' aliases in modules.builtin.modinfo) to one or more modules.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from rescue_runtime.errors import MissingError

_GLOB_RE = re.compile(r"[*?\[]")
MODULE_SUFFIXES = (".ko", ".ko.xz", ".ko.zst", ".ko.gz")


def modname(text: str) -> str:
    """A module name as kmod compares it: '-' and '_' are the same."""
    return text.replace("-", "_")


def module_name_of(relpath: str) -> str:
    """The module name of a path in modules.dep ("kernel/drivers/md/dm-mod.ko.xz" -> "dm_mod")."""
    base = relpath.rsplit("/", 1)[-1]
    for suffix in MODULE_SUFFIXES[::-1]:
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    return modname(base)


def alias_normalize(alias: str) -> str:
    """kmod's alias normalization: '-' becomes '_' except inside [...] character classes."""
    if "-" not in alias:
        return alias
    if "[" not in alias:
        return alias.replace("-", "_")
    out: list[str] = []
    in_class = False
    for c in alias:
        if c == "[":
            in_class = True
        elif c == "]":
            in_class = False
        out.append("_" if c == "-" and not in_class else c)
    return "".join(out)


def has_glob(text: str) -> bool:
    return _GLOB_RE.search(text) is not None


def _glob_prefix(pattern: str) -> str:
    match = _GLOB_RE.search(pattern)
    return pattern[: match.start()] if match else pattern


@dataclass(frozen=True)
class Resolution:
    """What a name stands for: module files and/or modules built into the kernel (by name)."""

    modules: tuple[str, ...] = ()
    builtin: tuple[str, ...] = ()

    @property
    def found(self) -> bool:
        return bool(self.modules or self.builtin)


@dataclass
class ModuleIndex:
    """The parsed module index of one kernel's modules directory."""

    modules_dir: Path
    paths: dict[str, str] = field(default_factory=dict)  # name -> path relative to modules_dir
    deps: dict[str, list[str]] = field(default_factory=dict)  # name -> names it needs
    softdeps: dict[str, tuple[list[str], list[str]]] = field(default_factory=dict)  # pre, post
    weakdeps: dict[str, list[str]] = field(default_factory=dict)
    builtin: set[str] = field(default_factory=set)
    aliases: dict[str, set[str]] = field(default_factory=dict)  # exact normalized alias -> names
    # Wildcard aliases bucketed by the text before ':' (the bus), as (prefix, pattern, name).
    glob_aliases: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)
    builtin_aliases: dict[str, set[str]] = field(default_factory=dict)  # alias -> names
    builtin_glob_aliases: list[tuple[str, str]] = field(default_factory=list)  # (pattern, name)

    @property
    def version(self) -> str:
        return self.modules_dir.name

    @classmethod
    def load(cls, modules_dir: str | os.PathLike[str]) -> ModuleIndex:
        """Read the index files of a modules directory (/lib/modules/VERSION).

        modules.dep is required; softdep, weakdep, alias, builtin and builtin.modinfo are read
        when present.
        """
        mdir = Path(modules_dir)
        dep_file = mdir / "modules.dep"
        if not dep_file.is_file():
            raise MissingError(
                f"The kernel modules directory {mdir} has no modules.dep, so its modules cannot "
                "be resolved.",
                hint=f"Run `depmod {mdir.name}`, or reinstall the kernel package.",
            )
        index = cls(mdir)
        index._read_dep(dep_file.read_text(errors="replace"))
        index._read_softdep(_read_optional(mdir / "modules.softdep"))
        index._read_weakdep(_read_optional(mdir / "modules.weakdep"))
        index._read_alias(_read_optional(mdir / "modules.alias"))
        index._read_builtin(_read_optional(mdir / "modules.builtin"))
        index._read_builtin_modinfo(mdir / "modules.builtin.modinfo")
        return index

    # --- parsers ---------------------------------------------------------------------------

    def _read_dep(self, text: str) -> None:
        for line in text.splitlines():
            if ":" not in line:
                continue
            path, _, rest = line.partition(":")
            path = path.strip()
            name = module_name_of(path)
            self.paths[name] = path
            self.deps[name] = [module_name_of(p) for p in rest.split()]

    def _read_softdep(self, text: str) -> None:
        for line in _config_lines(text):
            words = line.split()
            if len(words) < 3 or words[0] != "softdep":
                continue
            pre, post = self.softdeps.setdefault(modname(words[1]), ([], []))
            # Like kmod, names before the first "pre:"/"post:" are ignored.
            target: list[str] | None = None
            for word in words[2:]:
                if word == "pre:":
                    target = pre
                elif word == "post:":
                    target = post
                elif target is not None:
                    target.append(word)

    def _read_weakdep(self, text: str) -> None:
        for line in _config_lines(text):
            words = line.split()
            if len(words) >= 3 and words[0] == "weakdep":
                self.weakdeps.setdefault(modname(words[1]), []).extend(words[2:])

    def _read_alias(self, text: str) -> None:
        for line in _config_lines(text):
            words = line.split()
            if len(words) != 3 or words[0] != "alias":
                continue
            alias, name = alias_normalize(words[1]), modname(words[2])
            if has_glob(alias):
                bucket = alias.split(":", 1)[0] if ":" in alias else ""
                entry = (_glob_prefix(alias), alias, name)
                self.glob_aliases.setdefault(bucket, []).append(entry)
            else:
                self.aliases.setdefault(alias, set()).add(name)

    def _read_builtin(self, text: str) -> None:
        for line in text.splitlines():
            line = line.strip()
            if line:
                self.builtin.add(module_name_of(line))

    def _read_builtin_modinfo(self, path: Path) -> None:
        # NUL-separated "module.key=value" strings: builtin modules' names and aliases.
        if not path.is_file():
            return
        for raw in path.read_bytes().split(b"\0"):
            entry = raw.decode("utf-8", errors="replace")
            head, sep, value = entry.partition("=")
            if not sep or "." not in head:
                continue
            mod, _, key = head.partition(".")
            # Only aliases: "name.parm=" entries also exist for builtin code that is no module.
            if key == "alias":
                alias = alias_normalize(value)
                if has_glob(alias):
                    self.builtin_glob_aliases.append((alias, modname(mod)))
                else:
                    self.builtin_aliases.setdefault(alias, set()).add(modname(mod))

    # --- lookups ----------------------------------------------------------------------------

    def resolve(self, name: str) -> Resolution:
        """Resolve a module name or alias as modprobe does (module, builtin, then aliases)."""
        mod = modname(name)
        if mod in self.paths:
            return Resolution((mod,))
        if mod in self.builtin:
            return Resolution(builtin=(mod,))
        alias = alias_normalize(name)
        found = set(self.aliases.get(alias, ()))
        bucket = alias.split(":", 1)[0] if ":" in alias else ""
        for prefix, pattern, target in self.glob_aliases.get(bucket, ()):
            if alias.startswith(prefix) and fnmatch.fnmatchcase(alias, pattern):
                found.add(target)
        builtin = set(self.builtin_aliases.get(alias, ()))
        builtin.update(n for p, n in self.builtin_glob_aliases if fnmatch.fnmatchcase(alias, p))
        # An alias may name a builtin module directly ("alias fs-ext4 ext4" with ext4 built in).
        builtin.update(m for m in found if m in self.builtin)
        return Resolution(
            tuple(sorted(m for m in found if m in self.paths)), tuple(sorted(builtin))
        )

    def match(self, pattern: str) -> tuple[list[str], bool]:
        """Module names matching a glob ("dm-*"), and whether any builtin module matches."""
        pat = modname(pattern)
        mods = sorted(n for n in self.paths if fnmatch.fnmatchcase(n, pat))
        builtin = any(fnmatch.fnmatchcase(n, pat) for n in self.builtin)
        return mods, builtin

    def closure(self, names: Iterable[str]) -> tuple[set[str], list[tuple[str, str]]]:
        """Every module the given module names need: modules.dep, softdeps (pre and post) and
        weakdeps, recursively.

        Returns the set of module names and the soft/weak dependencies that resolve to
        nothing in this kernel as (name, module that wanted it); hard dependencies always exist
        (depmod wrote them from the files).
        """
        todo = [modname(n) for n in names if modname(n) in self.paths]
        seen: set[str] = set()
        unresolved: list[tuple[str, str]] = []
        while todo:
            mod = todo.pop()
            if mod in seen:
                continue
            seen.add(mod)
            todo.extend(d for d in self.deps.get(mod, ()) if d in self.paths)
            pre, post = self.softdeps.get(mod, ([], []))
            for soft in (*pre, *post, *self.weakdeps.get(mod, ())):
                res = self.resolve(soft)
                if not res.found:
                    unresolved.append((soft, mod))
                todo.extend(res.modules)
        return seen, unresolved


def _read_optional(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def _config_lines(text: str) -> Iterable[str]:
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            yield line
