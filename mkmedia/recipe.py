"""Read one recipe/configuration file into a Layer of typed assignments, with positions.

Validation happens here, per file, so every error names the file, line and column of the
offending key or value and says what would be right.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from mkmedia.settings import BY_NAME, RECIPE_KEYWORDS, Kind, Setting
from rescue_runtime.errors import ConfigError

LIST_OPS = ("replace", "remove", "append")  # applied in this order within one layer


@dataclass(frozen=True)
class Origin:
    """Where a value came from: a layer, and a position in its file when it has one."""

    layer: str
    path: Path | None = None
    line: int | None = None  # 1-based
    column: int | None = None  # 1-based

    def where(self) -> str:
        if self.path is None:
            return self.layer
        text = str(self.path)
        if self.line is not None:
            text += f", line {self.line}"
            if self.column is not None:
                text += f", column {self.column}"
        return text


@dataclass(frozen=True)
class Assignment:
    name: str
    op: str  # set | append | remove | replace
    value: object
    origin: Origin


@dataclass
class Layer:
    label: str
    path: Path | None
    status: str  # OK | missing | empty
    assignments: list[Assignment] = field(default_factory=list)
    extends: list[tuple[str, Origin]] = field(default_factory=list)
    description: str = ""


def _origin(label: str, path: Path, node: yaml.Node) -> Origin:
    mark = node.start_mark
    return Origin(label, path, mark.line + 1, mark.column + 1)


def suggest(name: str) -> str:
    names = list(BY_NAME) + [k for k in RECIPE_KEYWORDS]
    close = difflib.get_close_matches(name.upper(), names, n=1, cutoff=0.6)
    if close:
        return f"Did you mean {close[0]!r}?"
    return "`mkmedia settings` lists every known setting."


def _construct(node: yaml.Node) -> object:
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()


def coerce_scalar(setting: Setting, value: object, origin: Origin) -> object:
    """Check and convert one scalar value for `setting`; raise ConfigError naming `origin`."""
    where = origin.where()
    kind = setting.kind
    if kind is Kind.BOOL:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in (
            "yes",
            "true",
            "on",
            "1",
            "no",
            "false",
            "off",
            "0",
        ):
            return value.lower() in ("yes", "true", "on", "1")
        raise ConfigError(
            f"{where}: {setting.name} must be a boolean (yes/no, true/false), not {value!r}."
        )
    if kind is Kind.INT:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
        raise ConfigError(f"{where}: {setting.name} must be a whole number, not {value!r}.")
    if isinstance(value, bool) and kind is Kind.CHOICE and {"yes", "no"} <= set(setting.choices):
        return "yes" if value else "no"  # `secure_boot: true` means yes
    if isinstance(value, bool):
        raise ConfigError(
            f"{where}: {setting.name} must be text, but YAML read {value!r} as a boolean.",
            hint='Put the value in quotes (for example "yes").',
        )
    if value is None:
        text = ""
    elif isinstance(value, (str, int, float)):
        text = str(value)
    else:
        raise ConfigError(
            f"{where}: {setting.name} must be a single {kind.value} value, "
            f"not a {type(value).__name__}."
        )
    if kind is Kind.CHOICE:
        for choice in setting.choices:
            if text.lower() == choice.lower():
                return choice
        close = difflib.get_close_matches(text, setting.choices, n=1, cutoff=0.5)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(
            f"{where}: {text!r} is not a valid value for {setting.name}; "
            f"choose one of {', '.join(setting.choices)}.{hint}"
        )
    return text


def list_items(setting: Setting, value: object, origin: Origin) -> list[str]:
    if not isinstance(value, list):
        # A scalar is refused, not taken as one item: `PROGS: 5` is a slip, not a program.
        raise ConfigError(
            f"{origin.where()}: {setting.name} takes a list (or a mapping with "
            f"append/remove/replace lists), not the {type(value).__name__} {value!r}.",
            hint=f"Write it as a YAML list, for example `{setting.name}: [{value}]`.",
        )
    items = []
    for item in value:
        if not isinstance(item, str):
            raise ConfigError(
                f"{origin.where()}: every entry of {setting.name} must be text; "
                f"{item!r} is not. Quote it, or write one item per line."
            )
        items.append(item)
    return items


def list_assignments(setting: Setting, value: object, origin: Origin) -> list[Assignment]:
    """A plain list appends; a mapping may say replace/remove/append explicitly."""
    if isinstance(value, dict):
        unknown = [k for k in value if str(k).lower() not in LIST_OPS]
        if unknown:
            raise ConfigError(
                f"{origin.where()}: {setting.name} has the key {unknown[0]!r}; a list setting "
                f"takes a list, or a mapping with the keys {', '.join(LIST_OPS)}."
            )
        ops = {str(k).lower(): v for k, v in value.items()}
        return [
            Assignment(setting.name, op, list_items(setting, ops[op], origin), origin)
            for op in LIST_OPS
            if op in ops
        ]
    if value is None:
        raise ConfigError(
            f"{origin.where()}: {setting.name} is empty. To clear the list write "
            f"`{setting.name}: {{replace: []}}`; to add to it, give a list."
        )
    return [Assignment(setting.name, "append", list_items(setting, value, origin), origin)]


def assignments_for(setting: Setting, value: object, origin: Origin) -> list[Assignment]:
    if setting.is_list:
        return list_assignments(setting, value, origin)
    return [Assignment(setting.name, "set", coerce_scalar(setting, value, origin), origin)]


def load_file(path: Path, label: str) -> Layer:
    """Parse one YAML file into a Layer; a missing file is a Layer with status 'missing'."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Layer(label, path, "missing")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read ({exc}).") from exc
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        position = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError(
            f"{path}{position}: this is not valid YAML ({problem}).",
            hint="Check the indentation and the quoting around that place.",
        ) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: this is not valid YAML ({exc}).") from exc
    layer = Layer(label, path, "empty")
    if root is None:
        return layer
    if not isinstance(root, yaml.MappingNode):
        raise ConfigError(
            f"{_origin(label, path, root).where()}: a recipe must be a mapping of settings "
            "(NAME: value lines), not a "
            f"{'list' if isinstance(root, yaml.SequenceNode) else 'single value'}."
        )
    seen: dict[str, Origin] = {}
    for key_node, value_node in root.value:
        origin = _origin(label, path, key_node)
        if not isinstance(key_node, yaml.ScalarNode):
            raise ConfigError(f"{origin.where()}: a setting name must be a plain word.")
        name = str(key_node.value).upper()
        if name in seen:
            raise ConfigError(
                f"{origin.where()}: {name} is given twice in this file "
                f"(first at line {seen[name].line}). Keep one."
            )
        seen[name] = origin
        value = _construct(value_node)
        value_origin = _origin(label, path, value_node)
        if name == "EXTENDS":
            parents = value if isinstance(value, list) else [value]
            if not all(isinstance(p, str) and p for p in parents):
                raise ConfigError(
                    f"{value_origin.where()}: extends takes a recipe name or path, "
                    "or a list of them."
                )
            layer.extends.extend((str(p), value_origin) for p in parents)
            continue
        if name == "DESCRIPTION":
            layer.description = "" if value is None else str(value)
            continue
        setting = BY_NAME.get(name)
        if setting is None:
            raise ConfigError(
                f"{origin.where()}: unknown setting {key_node.value!r}. {suggest(name)}"
            )
        layer.assignments.extend(assignments_for(setting, value, value_origin))
    layer.status = "OK" if (layer.assignments or layer.extends or layer.description) else "empty"
    return layer


def parse_set(expr: str) -> Assignment:
    """Turn a `--set NAME=VALUE` (or NAME+=VALUE, NAME-=VALUE) into an Assignment."""
    origin = Origin("--set", None)
    if "=" not in expr:
        raise ConfigError(
            f"--set {expr!r}: expected NAME=VALUE (lists also NAME+=ITEM or NAME-=ITEM)."
        )
    left, value = expr.split("=", 1)
    op = "set"
    if left.endswith("+"):
        left, op = left[:-1], "append"
    elif left.endswith("-"):
        left, op = left[:-1], "remove"
    name = left.strip().upper()
    setting = BY_NAME.get(name)
    if setting is None:
        raise ConfigError(f"--set {expr!r}: unknown setting {left.strip()!r}. {suggest(name)}")
    origin = Origin(f"--set {name}", None)
    if setting.is_list:
        # NAME=a,b replaces, NAME+=a,b appends, NAME-=a,b removes: commas split in all three.
        items = [item for item in value.split(",") if item]
        return Assignment(name, "replace" if op == "set" else op, items, origin)
    if op != "set":
        raise ConfigError(f"--set {expr!r}: {name} is not a list; use {name}=VALUE.")
    return Assignment(name, "set", coerce_scalar(setting, value, origin), origin)
