"""Generation quality of a GPT export: gFID of class-balanced samples against real images."""
from __future__ import annotations

import torch

from vqgan.images import to_uint8


def balanced_labels(num_samples: int, num_classes: int) -> torch.Tensor:
    """num_samples labels, as even over the classes as the count allows (the first classes get one more)."""
    return torch.arange(num_samples) % num_classes if num_classes else torch.zeros(0, dtype=torch.long)


def generation_fid(fid, images: torch.Tensor, batch_size: int = 50) -> float:
    """FID of `images` against the real features already in `fid` (which keeps them)."""
    fid.reset()
    for start in range(0, images.shape[0], batch_size):
        fid.update(to_uint8(images[start:start + batch_size]).to(fid.device), real=False)
    return fid.compute().item()
