"""MaskGIT (Chang et al., 2022) over the same codes as the GPT: a bidirectional transformer
that predicts every masked code at once. Same blocks, 2-D rotary positions and condition
tokens as the GPT; a [MASK] token of its own (`config.mask_id`).

Training (`loss`): per image a mask ratio cos(pi/2 * r), r ~ U(0, 1), hides that share of the
codes (at least one); the loss counts the masked positions only. Sampling: maskgit_sampling.py.
"""
from __future__ import annotations

import math

import torch

from .model import GPT


def mask_ratio(progress: torch.Tensor) -> torch.Tensor:
    """MaskGIT's cosine schedule: the share of codes masked at `progress` in [0, 1] (1 -> 0)."""
    return torch.cos(progress * math.pi / 2)


def random_mask(batch: int, length: int, device, generator: torch.Generator | None = None) -> torch.Tensor:
    """(B, T) bool, True where masked: per row, ceil(cos(pi/2 * r) * T) positions (at least one),
    r ~ U(0, 1), chosen uniformly at random."""
    r = torch.rand(batch, device=device, generator=generator)
    count = (mask_ratio(r) * length).ceil().clamp(1, length)  # (B,)
    scores = torch.rand(batch, length, device=device, generator=generator)
    ranks = scores.argsort(dim=1).argsort(dim=1)  # (B, T): each position's rank among its row
    return ranks < count[:, None]


class MaskGIT(GPT):
    """`forward(prefix, tokens)` -> logits (B, T, vocab_size) for every image position, where
    tokens (B, T) hold codes or `config.mask_id`."""

    KIND = "maskgit"

    def forward(self, prefix: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        h = self._run(torch.cat([prefix, tokens], dim=1), 0, None)  # (B, P + T, C), all positions see all
        return self.head(h[:, prefix.shape[1]:])

    def predict_for_loss(self, prefix: torch.Tensor, codes: torch.Tensor,
                         generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (B, T, vocab) with a mask drawn per image, and that mask (B, T): the loss counts
        the masked positions only."""
        masked = random_mask(codes.shape[0], codes.shape[1], codes.device, generator)  # (B, T)
        return self(prefix, codes.masked_fill(masked, self.config.mask_id)), masked

    def new_cache(self, *args, **kwargs):
        raise NotImplementedError("MaskGIT attends in both directions: it decodes without a KV cache")
