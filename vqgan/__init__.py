"""Stage 1: the VQGAN image tokenizer. `from vqgan import VQGAN` is all a user needs.

The names below load on first use (`vqgan/lazy.py`), so that light submodules import without torch.
"""
from .lazy import lazy_exports

_EXPORTS = {"VQGAN": "model", "VQGANConfig": "model", "QuantizerConfig": "quantize", "QuantizerOutput": "quantize"}
__all__ = list(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
