"""Generation quality of a GPT export: gFID of class-balanced samples against real images."""
from __future__ import annotations

import torch
from tqdm.auto import tqdm

from vqgan.images import to_uint8
from vqgan.model import VQGAN

from .model import GPT
from .sampling import generate


def balanced_labels(num_samples: int, num_classes: int) -> torch.Tensor:
    """num_samples labels, as even over the classes as the count allows (the first classes get one more)."""
    return torch.arange(num_samples) % num_classes if num_classes else torch.zeros(0, dtype=torch.long)


@torch.no_grad()
def sample_images(gpt: GPT, tokenizer: VQGAN, num_samples: int, batch_size: int = 50, cfg_scale: float | None = None,
                  top_k: int | None = None, top_p: float | None = None, temperature: float = 1.0, seed: int = 0,
                  progress: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """-> images (N, 3, H, W) on the [-1, 1] scale, and their labels (None if unconditional)."""
    device = gpt.head.weight.device
    labels = balanced_labels(num_samples, gpt.config.num_classes) if gpt.config.num_classes else None
    generator = torch.Generator(device).manual_seed(seed)
    grid = gpt.config.grid_size
    chunks = []
    for start in tqdm(range(0, num_samples, batch_size), desc="sampling", unit="batch", disable=not progress):
        count = min(batch_size, num_samples - start)
        cond = labels[start:start + count].to(device) if labels is not None else count
        codes = generate(gpt, cond, cfg_scale=cfg_scale, top_k=top_k, top_p=top_p, temperature=temperature,
                         generator=generator)
        chunks.append(tokenizer.decode(codes.view(count, grid, grid)).cpu())
    return torch.cat(chunks), labels


def generation_fid(fid, images: torch.Tensor, batch_size: int = 50) -> float:
    """FID of `images` against the real features already in `fid` (which keeps them)."""
    fid.reset()
    for start in range(0, images.shape[0], batch_size):
        fid.update(to_uint8(images[start:start + batch_size]), real=False)
    return fid.compute().item()
