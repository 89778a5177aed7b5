"""Layered configuration: collect the layers, merge them, expand variables, check, freeze.

Layers, first to last: the settings table's defaults, the built-in recipes (mkmedia/data/recipes/:
default.yaml, arch/ARCH.yaml, os/VENDOR.yaml, os/VENDOR/VERSION.yaml), the recipe named on the
command line with its `extends:` chain (parents first), CONFIG_DIR/site.yaml, CONFIG_DIR/local.yaml,
then --set. Scalars: the last layer wins. Lists: append, remove or replace.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from mkmedia import checks
from mkmedia.host.paths import DEFAULT_CONFIG_DIR, missing_data, recipes_dir
from mkmedia.host.sysinfo import SystemInfo, detect
from mkmedia.kernel.choice import KernelChoice, choose_once
from mkmedia.recipe import Assignment, Layer, Origin, load_file, parse_set
from mkmedia.settings import BY_NAME, SETTINGS
from rescue_runtime import backup
from rescue_runtime.errors import ConfigError

log = logging.getLogger("mkmedia.config")

BUILTIN = "built-in defaults"
_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*(?::[A-Za-z_][A-Za-z0-9_]*)?)\}")


@dataclass(frozen=True)
class Config:
    """The merged, expanded, checked settings; immutable once made."""

    values: Mapping[str, object]
    origins: Mapping[str, tuple[Origin, ...]]
    layers: tuple[Layer, ...]
    system: SystemInfo
    kernel: KernelChoice  # chosen once here; the build's kernel step raises its problem
    config_dir: Path
    variables: Mapping[str, str] = field(default_factory=dict)

    @property
    def kernel_version(self) -> str:
        return self.kernel.version

    def __getitem__(self, name: str) -> object:
        return self.values[name]

    def get_str(self, name: str) -> str:
        value = self.values[name]
        assert isinstance(value, str), name
        return value

    def get_int(self, name: str) -> int:
        value = self.values[name]
        assert isinstance(value, int), name
        return value

    def get_bool(self, name: str) -> bool:
        value = self.values[name]
        assert isinstance(value, bool), name
        return value

    def get_list(self, name: str) -> list[str]:
        value = self.values[name]
        assert isinstance(value, list), name
        return list(value)

    def origin_text(self, name: str) -> str:
        return ", ".join(o.where() for o in self.origins.get(name, ())) or BUILTIN

    def environment(self) -> dict[str, str]:
        """Settings as environment variables for hooks (lists joined by spaces)."""
        env = {}
        for name, value in self.values.items():
            if isinstance(value, list):
                env[name] = " ".join(value)
            elif isinstance(value, bool):
                env[name] = "yes" if value else "no"
            else:
                env[name] = str(value)
        env.update({f"MKMEDIA_{k}": v for k, v in self.variables.items()})
        return env

    def as_json(self) -> dict[str, object]:
        return {
            name: {"value": self.values[name], "from": [o.where() for o in self.origins[name]]}
            for name in self.values
        }


def builtin_layer() -> Layer:
    origin = Origin(BUILTIN)
    assignments = [
        Assignment(s.name, "replace" if s.is_list else "set", s.default, origin) for s in SETTINGS
    ]
    return Layer(BUILTIN, None, "OK", assignments)


def _builtin_candidate(name: str) -> Path | None:
    """A relative recipe name (hwclass/generic-server) looked up among the built-in recipes."""
    if os.path.isabs(name):
        return None
    return recipes_dir() / (name if name.endswith((".yaml", ".yml")) else f"{name}.yaml")


def _extends_path(name: str, including: Path | None, origin: Origin) -> Path:
    candidates: list[Path] = []
    base_name = name if name.endswith((".yaml", ".yml")) else f"{name}.yaml"
    if os.path.isabs(base_name):
        candidates.append(Path(base_name))
    elif including is not None:
        candidates.append(including.parent / base_name)
    builtin = _builtin_candidate(name)
    if builtin is not None:
        candidates.append(builtin)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    tried = ", ".join(str(c) for c in candidates)
    raise ConfigError(
        f"{origin.where()}: the recipe {name!r} named in extends was not found (looked at {tried})."
    )


def find_recipe(recipe: Path) -> Path:
    """The command line's recipe: a file, else a built-in recipe of that name (examples/minimal)."""
    if recipe.exists():
        return recipe
    builtin = _builtin_candidate(str(recipe))
    if builtin is not None and builtin.is_file():
        return builtin
    raise ConfigError(
        f"The recipe {recipe} does not exist"
        + (f" (nor does the built-in {builtin})." if builtin is not None else "."),
        hint="Give the path of a YAML recipe or the name of a built-in one (such as "
        "examples/minimal or hwclass/generic-server), or leave it out to build with the "
        "defaults.",
    )


def recipe_chain(path: Path, *, _stack: tuple[Path, ...] = ()) -> list[Layer]:
    """The recipe and everything it extends, parents first."""
    resolved = path.resolve()
    if resolved in _stack:
        cycle = " -> ".join(str(p) for p in (*_stack, resolved))
        raise ConfigError(f"The recipes extend each other in a circle: {cycle}. Break the circle.")
    layer = load_file(path, f"recipe {path.name}")
    if layer.status == "missing":
        raise ConfigError(
            f"The recipe {path} does not exist.",
            hint="Give the path of a YAML recipe, or leave it out to build with the defaults.",
        )
    layers: list[Layer] = []
    for parent, origin in layer.extends:
        layers += recipe_chain(_extends_path(parent, path, origin), _stack=(*_stack, resolved))
    return [*layers, layer]


def collect_layers(
    system: SystemInfo,
    *,
    recipe: Path | None = None,
    config_dir: Path = DEFAULT_CONFIG_DIR,
    sets: Sequence[str] = (),
) -> list[Layer]:
    base = recipes_dir()
    layers = [builtin_layer()]
    default = load_file(base / "default.yaml", "default")
    # The default recipe is what makes a rescue system at all (shell, storage tools, ...): an
    # installation without it must stop here, not build an empty system.
    if default.status == "missing":
        raise missing_data("default recipe", base / "default.yaml")
    layers.append(default)
    layers.append(load_file(base / "arch" / f"{system.arch}.yaml", "arch"))
    layers.append(load_file(base / "os" / f"{system.os_vendor}.yaml", "os"))
    layers.append(
        load_file(base / "os" / system.os_vendor / f"{system.os_version}.yaml", "os version")
    )
    if recipe is not None:
        layers += recipe_chain(find_recipe(recipe))
    layers.append(load_file(config_dir / "site.yaml", "site"))
    layers.append(load_file(config_dir / "local.yaml", "local"))
    set_layer = Layer("--set", None, "OK" if sets else "empty", [parse_set(s) for s in sets])
    layers.append(set_layer)
    return layers


def merge(layers: Sequence[Layer]) -> tuple[dict[str, object], dict[str, list[Origin]]]:
    values: dict[str, object] = {}
    origins: dict[str, list[Origin]] = {}
    for layer in layers:
        for a in layer.assignments:
            setting = BY_NAME[a.name]
            if not setting.is_list:
                values[a.name] = a.value
                origins[a.name] = [a.origin]
                continue
            assert isinstance(a.value, list)
            current = list(values.get(a.name, []))  # type: ignore[call-overload]
            if a.op == "replace":
                current = list(a.value)
                # an empty built-in default is no origin worth naming
                empty_default = a.origin.layer == BUILTIN and not a.value
                origins[a.name] = [] if empty_default else [a.origin]
            elif a.op == "append":
                current += [item for item in a.value if item not in current]
                origins.setdefault(a.name, []).append(a.origin)
            elif a.op == "remove":
                absent = [item for item in a.value if item not in current]
                if absent:
                    log.warning(
                        "%s: %s does not contain %s; nothing removed for it",
                        a.origin.where(),
                        a.name,
                        ", ".join(absent),
                    )
                current = [item for item in current if item not in a.value]
                origins.setdefault(a.name, []).append(a.origin)
            values[a.name] = current
    return values, origins


def expand(text: str, variables: Mapping[str, str], *, where: str, env_allowed: bool = True) -> str:
    """Replace ${NAME} from `variables` and ${env:NAME} from the environment; $$ is a $."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        if name.startswith("env:"):
            env_name = name[4:]
            if not env_allowed:
                raise ConfigError(f"{where}: environment variables cannot be used here.")
            if env_name not in os.environ:
                raise ConfigError(
                    f"{where}: ${{{name}}} names the environment variable {env_name}, "
                    "which is not set. Set it, or remove the reference."
                )
            return os.environ[env_name]
        if name not in variables:
            known = ", ".join(sorted(variables))
            raise ConfigError(
                f"{where}: unknown variable ${{{name}}}. Known variables: {known}; "
                "environment variables are written ${env:NAME}; a literal $ is $$."
            )
        return variables[name]

    return _VAR.sub(replace, text)


def expand_values(
    values: dict[str, object], origins: Mapping[str, list[Origin]], variables: Mapping[str, str]
) -> dict[str, object]:
    expanded: dict[str, object] = {}
    for name, value in values.items():
        setting = BY_NAME[name]
        where = f"{name} (set in {', '.join(o.where() for o in origins.get(name, []))})"
        if not setting.expand:
            expanded[name] = value
        elif isinstance(value, str):
            expanded[name] = expand(value, variables, where=where)
        elif isinstance(value, list):
            expanded[name] = [expand(item, variables, where=where) for item in value]
        else:
            expanded[name] = value
    return expanded


def check_registered(values: Mapping[str, object], where: Callable[[str], str]) -> None:
    """A choice whose registry (emitters, backup methods, menu entries) lacks it is refused."""
    for setting in SETTINGS:
        value = values[setting.name]
        if setting.registry is None or value in setting.registry.names():
            continue
        raise ConfigError(
            f"{setting.name}={value} (from {where(setting.name)}) "
            f"{setting.registry.why_not(str(value))}.",
            hint=f"This version offers {setting.name}: {', '.join(setting.offered)}.",
        )


def check_backup_url(method: str, url: str, where: Callable[[str], str], options: str = "") -> None:
    """BACKUP_URL as the BACKUP method takes it, and BACKUP_OPTIONS for that URL."""
    name = "BACKUP_URL" if url else "BACKUP"
    try:
        backup.method_class(method).check_url(url)
        name = "BACKUP_OPTIONS"
        if url:
            backup.method_class(method).check_options(url, options)
    except ConfigError as exc:
        message = f"{exc.message.rstrip('.')} ({name} from {where(name)})."
        raise ConfigError(message, hint=exc.hint) from None


def semantic_checks(values: Mapping[str, object], origins: Mapping[str, list[Origin]]) -> None:
    """Checks across settings, with messages that say what to change."""

    def where(name: str) -> str:
        return ", ".join(o.where() for o in origins.get(name, []))

    check_registered(values, where)
    check_backup_url(
        str(values["BACKUP"]), str(values["BACKUP_URL"]), where, str(values["BACKUP_OPTIONS"])
    )


def load_config(
    *,
    recipe: Path | None = None,
    config_dir: Path = DEFAULT_CONFIG_DIR,
    sets: Sequence[str] = (),
    system: SystemInfo | None = None,
    kernel_chooser: Callable[[str], KernelChoice] | None = None,
) -> Config:
    """Collect, merge, expand, check and freeze the configuration."""
    system = system or detect()
    layers = collect_layers(system, recipe=recipe, config_dir=config_dir, sets=sets)
    values, origins = merge(layers)
    variables = system.variables()
    kernel_spec = expand(str(values["KERNEL"]), variables, where="KERNEL")
    kernel = (kernel_chooser or choose_once)(kernel_spec)
    variables["KERNEL_VERSION"] = kernel.version
    values = expand_values(values, origins, variables)
    semantic_checks(values, origins)
    checks.check_values(values, origins, host=system.hostname)
    return Config(
        values=MappingProxyType(values),
        origins=MappingProxyType({k: tuple(v) for k, v in origins.items()}),
        layers=tuple(layers),
        system=system,
        kernel=kernel,
        config_dir=config_dir,
        variables=MappingProxyType(dict(variables)),
    )
