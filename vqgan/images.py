"""Image tensors <-> pixels, and PNG grids written atomically."""
from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image
from torchvision.utils import make_grid

from .io import atomic_path


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Images on the [-1, 1] scale -> uint8 in [0, 255] (clamped here, and only here)."""
    return ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def image_grid(images: torch.Tensor, nrow: int, padding: int = 2) -> torch.Tensor:
    """(N, 3, H, W) in [-1, 1] -> (3, H', W') uint8 grid with `nrow` images per row."""
    return make_grid(to_uint8(images).cpu(), nrow=nrow, padding=padding, pad_value=255)


def save_png(grid: torch.Tensor, path: str | Path) -> Path:
    """Write a (3, H, W) uint8 tensor as a PNG, atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        Image.fromarray(grid.permute(1, 2, 0).numpy()).save(tmp, format="PNG")
    return path


def paired_rows(top: torch.Tensor, bottom: torch.Tensor, per_row: int) -> torch.Tensor:
    """Interleave two (N, 3, H, W) batches so each row of `top` sits over its row of `bottom`."""
    rows = []
    for start in range(0, top.shape[0], per_row):
        a, b = top[start:start + per_row], bottom[start:start + per_row]
        if a.shape[0] < per_row:  # pad the last row so pairs stay aligned
            filler = torch.ones(per_row - a.shape[0], *a.shape[1:], dtype=a.dtype, device=a.device)
            a, b = torch.cat([a, filler]), torch.cat([b, filler])
        rows += [a, b]
    return torch.cat(rows)


def condition_rows(conditions: torch.Tensor, samples: torch.Tensor, per_row: int) -> torch.Tensor:
    """Rows of one condition (R, 3, H, W) followed by its `per_row` samples (R * per_row, 3, H, W):
    (R * (per_row + 1), 3, H, W), ready for `image_grid(..., nrow=per_row + 1)`."""
    rows = [torch.cat([conditions[r:r + 1], samples[r * per_row:(r + 1) * per_row]]) for r in range(len(conditions))]
    return torch.cat(rows)
