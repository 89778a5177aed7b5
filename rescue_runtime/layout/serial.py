"""Layout <-> JSON, with a format version.

Generic over the dataclasses of model.py: fields become keys, nested dataclasses objects.
Reading ignores unknown keys (a newer minor addition) but refuses a newer format_version.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from typing import Any

from rescue_runtime.errors import ConfigError
from rescue_runtime.layout.model import FORMAT_VERSION, Layout


def to_dict(layout: Layout) -> dict[str, Any]:
    return dataclasses.asdict(layout)


def to_json(layout: Layout) -> str:
    return json.dumps(to_dict(layout), indent=2, sort_keys=False) + "\n"


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _convert(args[0], value, where)
    if origin is list:
        (item,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise ValueError(f"{where}: expected a list, found {value!r}")
        return [_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        _, item = typing.get_args(tp)
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected an object, found {value!r}")
        return {str(k): _convert(item, v, f"{where}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return from_dict_as(tp, value, where)
    if tp is float and isinstance(value, int | float):
        return float(value)
    if tp in (int, str, bool) and not isinstance(value, tp):
        raise ValueError(f"{where}: expected {tp.__name__}, found {value!r}")
    if tp is int and isinstance(value, bool):
        raise ValueError(f"{where}: expected int, found {value!r}")
    return value


# Keys that name a record, to say which one is bad ("layout.mounts[2] (mountpoint '/srv')").
_NAMING_KEYS = ("id", "path", "mountpoint", "device", "name", "number")


def _record_name(where: str, data: dict[str, Any]) -> str:
    for key in _NAMING_KEYS:
        value = data.get(key)
        if isinstance(value, str | int) and not isinstance(value, bool):
            return f"{where} ({key} {value!r})"
    return where


def from_dict_as(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected an object, found {data!r}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            kwargs[f.name] = _convert(hints[f.name], data[f.name], f"{where}.{f.name}")
        elif _required(f):
            raise ValueError(
                f"{_record_name(where, data)}: the field {f.name!r} is missing "
                f"(a {cls.__name__.lower()} record needs "
                + ", ".join(repr(g.name) for g in dataclasses.fields(cls) if _required(g))
                + ")"
            )
    return cls(**kwargs)


def _required(f: dataclasses.Field[Any]) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def from_dict(data: Any, *, source: str = "layout") -> Layout:
    if not isinstance(data, dict):
        raise ConfigError(f"The saved layout {source} is not a JSON object.")
    version = data.get("format_version")
    if (
        not isinstance(version, int)
        or isinstance(version, bool)
        or not 1 <= version <= FORMAT_VERSION
    ):
        raise ConfigError(
            f"The saved layout {source} has format_version {version!r}; this mkmedia reads "
            f"versions 1 to {FORMAT_VERSION}.",
            hint="Save the layout again with this mkmedia (mkmedia layout save).",
        )
    try:
        layout = from_dict_as(Layout, data, "layout")
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"The saved layout {source} is malformed: {exc}.",
            hint="Save the layout again (mkmedia layout save).",
        ) from exc
    assert isinstance(layout, Layout)
    return layout


def from_json(text: str, *, source: str = "layout") -> Layout:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"The saved layout {source} is not valid JSON (line {exc.lineno}: {exc.msg}).",
            hint="Save the layout again (mkmedia layout save).",
        ) from exc
    return from_dict(data, source=source)
