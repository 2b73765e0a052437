"""Typed configs: a dataclass is the schema, a YAML file and `key=value` overrides fill it.

    cfg = load_config(VQGANTrainConfig, "configs/vqgan/emoji32.yaml", ["trainer.max_steps=20"])

A misspelt key, a value of the wrong type or an out-of-range value stops with a
`ConfigError` that names the key and where it came from, before any work starts.
"""
from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from .io import atomic_write_text
from .schema import ConfigError  # noqa: F401  (re-exported: scripts and tests catch it from here)

T = TypeVar("T")


def _schema_keys(node: DictConfig, prefix: str = "") -> list[str]:
    keys = []
    for key in node.keys():
        full = f"{prefix}{key}"
        keys.append(full)
        child = node._get_node(key)
        if isinstance(child, DictConfig):
            keys += _schema_keys(child, full + ".")
    return keys


def _merge(base: DictConfig, layer: DictConfig, source: str) -> DictConfig:
    try:
        return OmegaConf.merge(base, layer)
    except ConfigKeyError as err:
        hint = difflib.get_close_matches(str(err.full_key), _schema_keys(base), n=1)
        suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
        raise ConfigError(f"{source}: unknown key '{err.full_key}'{suggestion}") from None
    except OmegaConfBaseException as err:
        message = str(err).splitlines()[0]
        raise ConfigError(f"{source}: bad value for '{err.full_key}': {message}") from None


def parse_overrides(overrides: Sequence[str]) -> DictConfig:
    """`["a.b=1", "c=x"]` -> a DictConfig; an item without '=' is an error."""
    for item in overrides:
        if "=" not in item or item.startswith("="):
            raise ConfigError(f"command line: override '{item}' is not of the form key=value")
    return OmegaConf.from_dotlist([_quote_yaml11_words(item) for item in overrides])


# YAML 1.1 reads these as booleans, so `eval.fid_weights=off` would become the string "False";
# quoted they stay strings, and a bool key still accepts them (OmegaConf converts "off" -> False).
_YAML11_BOOLEAN_WORDS = {"on", "off", "yes", "no", "y", "n"}


def _quote_yaml11_words(item: str) -> str:
    key, value = item.split("=", 1)
    return f"{key}='{value}'" if value.strip().lower() in _YAML11_BOOLEAN_WORDS else item


def load_config(schema: type[T], path: str | Path | Sequence[str | Path] | None = None,
                overrides: Sequence[str] = ()) -> T:
    """Build a `schema` instance from defaults, then the YAML file(s) at `path` (later files
    override earlier ones), then the `key=value` overrides."""
    paths = [] if path is None else [path] if isinstance(path, (str, Path)) else list(path)
    merged = OmegaConf.structured(schema)
    for p in map(Path, paths):
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        merged = _merge(merged, read_mapping(p), str(p))
    if overrides:
        merged = _merge(merged, parse_overrides(overrides), "command line")
    try:
        return OmegaConf.to_object(merged)
    except (ValueError, OmegaConfBaseException) as err:
        where = " + ".join(map(str, paths)) or "defaults"
        if overrides:
            where += f" with overrides {list(overrides)}"
        raise ConfigError(f"{where}: {str(err).splitlines()[0]}") from None


def config_to_yaml(config) -> str:
    """The YAML text of a dataclass config, as `load_config` reads it back."""
    return OmegaConf.to_yaml(OmegaConf.structured(config))


def save_config(config, path: str | Path) -> None:
    """Write the merged config beside a run's outputs (atomically)."""
    atomic_write_text(Path(path), config_to_yaml(config))


def read_mapping(path: Path) -> DictConfig:
    """A YAML file that must hold a mapping of keys; bad YAML, a list or a scalar, and tags that
    would build Python objects (never constructed) are ConfigErrors naming the file."""
    try:
        node = OmegaConf.load(path)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(err).split())}") from None
    if not isinstance(node, DictConfig):
        raise ConfigError(f"{path}: a config file must be a mapping of keys, not a list or a single value")
    return node


def read_yaml(path: str | Path) -> dict:
    """A YAML file as plain dicts and lists (for foreign configs that have no schema here)."""
    return OmegaConf.to_container(read_mapping(Path(path)), resolve=True)
