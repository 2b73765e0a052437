"""Stage 1: the VQGAN image tokenizer. `from vqgan import VQGAN` is all a user needs."""
from .model import VQGAN, VQGANConfig
from .quantize import QuantizerConfig, QuantizerOutput

__all__ = ["VQGAN", "VQGANConfig", "QuantizerConfig", "QuantizerOutput"]
