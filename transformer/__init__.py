"""Stage 2: a GPT over the codes of a VQGAN tokenizer, and its sampler.

The names below load on first use (see `vqgan/__init__.py`).
"""
import importlib

_EXPORTS = {"GPT": "model", "GPTConfig": "model", "generate": "sampling", "load_generator": "generator"}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'transformer' has no attribute '{name}'")
