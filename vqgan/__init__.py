"""Stage 1: the VQGAN image tokenizer. `from vqgan import VQGAN` is all a user needs.

The names below load on first use, so that light submodules (`vqgan.cli`, `vqgan.schema`)
import without torch and a script's `--help` answers at once.
"""
import importlib

_EXPORTS = {"VQGAN": "model", "VQGANConfig": "model", "QuantizerConfig": "quantize", "QuantizerOutput": "quantize"}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'vqgan' has no attribute '{name}'")
