"""Package names that import their module on first use, so that light submodules (`vqgan.cli`,
`vqgan.schema`) load without torch and a script's `--help` answers at once."""
from __future__ import annotations

import importlib
from collections.abc import Callable


def lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], object]:
    """A module-level `__getattr__` for `package`: name -> `package.<exports[name]>.<name>`."""

    def __getattr__(name: str):
        if name in exports:
            return getattr(importlib.import_module(f".{exports[name]}", package), name)
        raise AttributeError(f"module '{package}' has no attribute '{name}'")

    return __getattr__
