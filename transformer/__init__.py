"""Stage 2: a GPT over the codes of a VQGAN tokenizer, and its sampler.

The names below load on first use (`vqgan/lazy.py`).
"""
from vqgan.lazy import lazy_exports

_EXPORTS = {"GPT": "model", "GPTConfig": "model", "generate": "sampling", "load_generator": "generator"}
__all__ = list(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
