"""Loading a trained generator for inference: a GPT export with the tokenizer inside it.

    from transformer.generator import load_generator
    gpt, tok = load_generator("data/pretrained/emoji32", "cuda")

Imports neither Lightning nor OmegaConf (tests/test_layout.py holds it to that).
"""
from __future__ import annotations

from pathlib import Path

import torch

from vqgan.export import load_weights, read_config
from vqgan.model import VQGAN

from .maskgit import MaskGIT
from .model import CONDITION_TOKENIZER, GPT, GPTConfig
from .pairing import check_pairing
from .sampling import sampling_dtype


def load_condition_tokenizer(directory: str | Path, map_location="cpu") -> VQGAN | None:
    """The conditioning tokenizer inside an image-conditional export, or None."""
    folder = Path(directory) / CONDITION_TOKENIZER
    return frozen_tokenizer(folder, map_location) if folder.is_dir() else None


def build_model(config: GPTConfig) -> GPT:
    """The stage-2 model of a config: a GPT or a MaskGIT, by `config.kind`."""
    return (MaskGIT if config.kind == "maskgit" else GPT)(config)


def load_stage2(directory: str | Path, map_location="cpu") -> GPT:
    """A stage-2 export of either kind (its config.json says which), in eval mode."""
    config = read_config(GPTConfig, directory)
    return load_weights(lambda: build_model(config), Path(directory), map_location).eval()


def frozen_tokenizer(directory: str | Path, device="cpu") -> VQGAN:
    tokenizer = VQGAN.from_pretrained(directory, device)
    tokenizer.requires_grad_(False)
    return tokenizer.eval()


def load_generator(directory: str | Path, map_location="cpu", dtype: torch.dtype | None = None) -> tuple[GPT, VQGAN]:
    """A stage-2 export (GPT or MaskGIT: its config.json says) and the tokenizer inside it,
    checked to fit each other, both on `map_location`. The model is cast to `dtype` (default:
    `sampling_dtype`, bf16 where the device computes it natively); the tokenizer stays in fp32."""
    directory = Path(directory)
    gpt = load_stage2(directory, map_location)
    gpt = gpt.to(dtype or sampling_dtype(map_location))
    tokenizer_dir = directory / "tokenizer"
    tokenizer = frozen_tokenizer(tokenizer_dir, map_location)
    check_pairing(gpt.config, tokenizer, tokenizer_dir)
    return gpt, tokenizer
