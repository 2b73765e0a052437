"""The one command-line dialect of every script: `--config FILE` (repeatable, merged in order),
then typed `key=value` overrides, both checked against the script's schema dataclass. Short
flags such as `--num 64` are aliases of schema keys (`num=64`).

Imports nothing heavy, so `--help` answers before torch loads:

    parser = config_parser(__doc__, aliases=[Alias("--num", "num", "images to sample")])
    args = parser.parse_args()           # fast: argparse only
    config = load_script_config(SampleScriptConfig, args)
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Alias:
    """`flag` sets schema key `key`; `to_value` turns the flag's text into the override's value
    (e.g. "0,3" -> "[0,3]"); `const` makes a switch that takes no value."""

    flag: str
    key: str
    help: str = ""
    to_value: Callable[[str], str] | None = None
    const: str | None = None


def comma_list(text: str) -> str:
    """"0,3" -> "[0,3]": the short flag's comma-separated form as a YAML list."""
    return "[" + text.strip("[]") + "]"


def config_parser(doc: str | None, aliases: Sequence[Alias] = (), config_required: bool = False,
                  default_config: str | None = None) -> argparse.ArgumentParser:
    """An ArgumentParser with `--config` (repeatable), the `aliases` and `key=value` overrides."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    config_help = "YAML file; repeat to merge several, later ones win"
    if default_config:
        config_help += f" (default: {default_config})"
    parser.add_argument("--config", action="append", required=config_required, default=None, help=config_help)
    for alias in aliases:
        target = f"same as {alias.key}=..."
        if alias.const is not None:
            parser.add_argument(alias.flag, dest=_dest(alias), action="store_const", const=alias.const,
                                help=f"{alias.help} ({alias.key}={alias.const})")
        else:
            parser.add_argument(alias.flag, dest=_dest(alias), default=None, metavar=alias.key.split(".")[-1].upper(),
                                help=f"{alias.help} ({target})" if alias.help else target)
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="typed overrides of the script's config")
    parser.set_defaults(_aliases=list(aliases), _default_config=default_config)
    return parser


def _dest(alias: Alias) -> str:
    return "alias_" + alias.flag.lstrip("-").replace("-", "_")


def overrides_of(args: argparse.Namespace) -> list[str]:
    """The alias flags given, as `key=value` items, followed by the positional overrides (so a
    `key=value` on the command line wins over a flag for the same key)."""
    items = []
    for alias in args._aliases:
        value = getattr(args, _dest(alias))
        if value is not None:
            items.append(f"{alias.key}={alias.to_value(value) if alias.to_value else value}")
    return items + list(args.overrides)


def config_files(args: argparse.Namespace) -> list[str]:
    return args.config or ([args._default_config] if args._default_config else [])


def load_script_config(schema, args: argparse.Namespace):
    """Defaults < `--config` files in order < alias flags < `key=value`; errors exit in one line."""
    from .config import ConfigError, load_config

    try:
        return load_config(schema, config_files(args), overrides_of(args))
    except ConfigError as err:
        sys.exit(f"error: {err}")
