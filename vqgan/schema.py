"""Dataclass schemas without OmegaConf: the error type, range checks, and a strict reader of
plain dicts (a config.json) into a dataclass, so that loading a model for inference needs
neither OmegaConf nor Lightning. YAML files and `key=value` overrides go through `vqgan.config`.
"""
from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A config file or override that does not fit its schema."""


def require(condition: bool, key: str, message: str) -> None:
    """Range check for `__post_init__`: raise a ValueError naming `key`."""
    if not condition:
        raise ValueError(f"'{key}' {message}")


def dataclass_from_dict(schema: type[T], values: dict, source: str, prefix: str = "") -> T:
    """Build `schema` from a plain (nested) dict strictly: an unknown key (with a "did you mean"),
    a value of the wrong type or one that fails the schema's own checks is a ConfigError that
    names `source` and the key. Missing keys take the schema's defaults."""
    if not isinstance(values, dict):
        where = f"'{prefix.rstrip('.')}' must be a mapping of keys" if prefix else "must be a JSON object of config keys"
        raise ConfigError(f"{source}: {where}, got a {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(schema) if f.init}
    hints = typing.get_type_hints(schema)
    kwargs = {}
    for key, value in values.items():
        if key not in fields:
            hint = difflib.get_close_matches(str(key), list(fields), n=1)
            suggestion = f" (did you mean '{prefix}{hint[0]}'?)" if hint else ""
            raise ConfigError(f"{source}: unknown key '{prefix}{key}'{suggestion}")
        kwargs[key] = _convert(hints[key], value, source, f"{prefix}{key}")
    try:
        return schema(**kwargs)
    except ValueError as err:
        raise ConfigError(f"{source}: {err}") from None


def _convert(kind, value, source: str, key: str):
    """`value` checked against the annotation `kind` (ints are accepted where floats are)."""
    if dataclasses.is_dataclass(kind):
        return dataclass_from_dict(kind, value, source, key + ".")
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        kind = next(a for a in args if a is not type(None))
        return _convert(kind, value, source, key)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{source}: '{key}' must be a list, got {value!r}")
        return origin(_convert(args[0], item, source, f"{key}[{i}]") for i, item in enumerate(value))
    if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if kind in (int, str, bool) and type(value) is kind:
        return value
    if kind is typing.Any:
        return value
    raise ConfigError(f"{source}: '{key}' must be of type {getattr(kind, '__name__', kind)}, got {value!r}")
