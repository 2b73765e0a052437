"""Finite scalar quantization (Mentzer et al., 2023): no codebook, no codebook loss."""
from __future__ import annotations

import torch

from .quantize import Quantizer, QuantizerConfig, QuantizerOutput


class FSQuantizer(Quantizer):
    """Channel i is bounded by tanh and rounded to one of levels[i] values in [-1, 1]
    (straight-through gradients). Code index = mixed-radix number of the per-channel
    levels, so index <-> code is a bijection over prod(levels) codes."""

    def __init__(self, dim: int, config: QuantizerConfig):
        super().__init__(dim, config.codebook_size, config.usage_window)
        if dim != len(config.fsq_levels):
            raise ValueError(f"fsq needs model.embed_dim == len(fsq_levels) = {len(config.fsq_levels)}, got {dim}")
        levels = torch.tensor(config.fsq_levels, dtype=torch.long)
        self.register_buffer("levels", levels, persistent=False)
        self.register_buffer("basis", torch.cumprod(torch.cat([torch.ones(1, dtype=torch.long), levels[:-1]]), 0),
                             persistent=False)
        self.eps = 1e-3

    def _half_width(self) -> torch.Tensor:
        return (self.levels // 2).float().view(1, -1, 1, 1)  # (1, D, 1, 1)

    def bound(self, z: torch.Tensor) -> torch.Tensor:
        """(B, D, h, w) -> values in (-L/2, L/2) whose rounding gives exactly L integers per channel."""
        levels = self.levels.float().view(1, -1, 1, 1)
        half_l = (levels - 1) * (1 - self.eps) / 2
        offset = torch.where(self.levels % 2 == 0, 0.5, 0.0).view(1, -1, 1, 1)
        shift = torch.atanh(offset / half_l)
        return torch.tanh(z.float() + shift) * half_l - offset

    def quantize(self, z: torch.Tensor) -> QuantizerOutput:
        bounded = self.bound(z)
        rounded = bounded + (bounded.round() - bounded).detach()  # straight-through rounding
        z_q = (rounded / self._half_width()).to(z.dtype)  # codes in [-1, 1]
        return QuantizerOutput(z_q, self.codes_to_indices(z_q.detach()), torch.zeros((), device=z.device))

    def codes_to_indices(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, D, h, w) codes -> (B, h, w) indices: the digits in [0, L) as a mixed-radix number."""
        digits = (codes.float() * self._half_width()).round().long() + self._half_width().long()
        return (digits * self.basis.view(1, -1, 1, 1)).sum(dim=1)

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        digits = (indices.unsqueeze(1) // self.basis.view(1, -1, 1, 1)) % self.levels.view(1, -1, 1, 1)
        return (digits - self._half_width()) / self._half_width()
