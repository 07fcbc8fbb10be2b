"""Typed options: the one routine that turns YAML values into the types a dataclass declares.

The sweep file (`engine.config`) and a strategy's ``strategy.options`` (`strategies.base`) both
coerce with `coerce`, so a value is accepted or refused the same way everywhere: booleans are
never integers, integers widen to floats, YAML 1.1's ``1e-3`` (a string) reads as a float,
``X | None`` accepts null, ``Literal`` lists its choices, dataclasses recurse. Errors are one
`ConfigError` line naming the key and the expected type, in the words of ``names``: the sweep
file speaks prose ("an integer"), strategy options speak Python ("int"), as their docs do.

It sits at the bottom of `platform/` (beside `errors`) because both the engine and the
strategies use it, and strategies never import the engine.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Literal

from nasforge.platform.errors import ConfigError

PROSE = {int: "an integer", float: "a number", str: "a string", bool: "true or false",
         list: "a list", dict: "a mapping"}
PYTHON = {int: "int", float: "float", str: "str", bool: "bool", list: "list", dict: "dict"}

_UNIONS = (typing.Union, types.UnionType)


def type_name(tp: Any, names: dict = PROSE) -> str:
    """How an error message names ``tp``."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(map(str, typing.get_args(tp)))
    if origin in _UNIONS:
        return " or ".join(type_name(a, names) for a in typing.get_args(tp) if a is not type(None)) + " or null"
    if origin in (list, tuple):
        return names[list]
    if origin is dict or dataclasses.is_dataclass(tp):
        return names[dict]
    return names.get(tp, getattr(tp, "__name__", str(tp)))


def coerce(value: Any, tp: Any, key: str, names: dict = PROSE,
           from_mapping: typing.Callable[[type, Any, str], Any] | None = None) -> Any:
    """``value`` as type ``tp`` or a ConfigError naming ``key``; ``from_mapping(cls, value, key)``
    builds nested dataclasses (the sweep file's own, which also checks unknown keys)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{key}: {value!r} is not valid; choose one of {', '.join(map(str, args))}")
        return value
    if origin in _UNIONS:
        if value is None and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return coerce(value, a, key, names, from_mapping)
            except ConfigError:
                continue
        raise ConfigError(f"{key}: expected {type_name(tp, names)}, got {value!r}")
    if dataclasses.is_dataclass(tp) and from_mapping is not None:
        return from_mapping(tp, value, key)
    if origin is list or tp is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected {names[list]}, got {value!r}")
        return [coerce(v, args[0], f"{key}[{i}]", names, from_mapping) for i, v in enumerate(value)] if args else value
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected {names[dict]}, got {value!r}")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected {names[bool]}, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected {names[int]}, got {value!r}")
        return value
    if tp is float:
        return _float(value, key, names)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected {names[str]}, got {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported type {tp}")  # pragma: no cover - a bug in a declaration


def _float(value: Any, key: str, names: dict) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if isinstance(value, str):  # YAML 1.1 reads "1e-3" as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{key}: expected {names[float]}, got {value!r}")
    return float(value)
