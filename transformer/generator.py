"""Loading a trained generator for inference: a GPT export with the tokenizer inside it.

    from transformer.generator import load_generator
    gpt, tok = load_generator("data/pretrained/emoji32", "cuda")

Imports neither Lightning nor OmegaConf (tests/test_layout.py holds it to that).
"""
from __future__ import annotations

from pathlib import Path

import torch

from vqgan.model import VQGAN

from .model import GPT, GPTConfig
from .sampling import sampling_dtype


class TokenizerMismatchError(ValueError):
    """A GPT config that does not fit the tokenizer it is paired with."""


def check_pairing(config: GPTConfig, tokenizer: VQGAN, tokenizer_dir: str | Path) -> None:
    """The GPT's vocabulary and grid must be the tokenizer's codebook and code grid."""
    codebook, grid = tokenizer.codebook_size, tokenizer.config.grid_size
    if config.vocab_size != codebook or config.grid_size != grid:
        raise TokenizerMismatchError(
            f"GPT (vocab_size={config.vocab_size}, grid_size={config.grid_size}) does not match the tokenizer "
            f"{tokenizer_dir} (codebook_size={codebook}, grid {grid}x{grid}); set model.vocab_size={codebook} "
            f"model.grid_size={grid}"
        )


def frozen_tokenizer(directory: str | Path, device="cpu") -> VQGAN:
    tokenizer = VQGAN.from_pretrained(directory, device)
    tokenizer.requires_grad_(False)
    return tokenizer.eval()


def load_generator(directory: str | Path, map_location="cpu", dtype: torch.dtype | None = None) -> tuple[GPT, VQGAN]:
    """A GPT export and the tokenizer inside it, checked to fit each other, both on
    `map_location`. The GPT is cast to `dtype` (default: `sampling_dtype`, bf16 where the
    device computes it natively); the tokenizer stays in fp32."""
    directory = Path(directory)
    gpt = GPT.from_pretrained(directory, map_location)
    gpt = gpt.to(dtype or sampling_dtype(map_location))
    tokenizer_dir = directory / "tokenizer"
    tokenizer = frozen_tokenizer(tokenizer_dir, map_location)
    check_pairing(gpt.config, tokenizer, tokenizer_dir)
    return gpt, tokenizer
