"""Stage 2: a GPT over the codes of a VQGAN tokenizer, and its sampler."""
from .generator import load_generator
from .model import GPT, GPTConfig
from .sampling import generate

__all__ = ["GPT", "GPTConfig", "generate", "load_generator"]
