"""Gumbel-softmax quantizer, with taming-transformers' GumbelQuantize layout and loss."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .quantize import Quantizer, QuantizerConfig, QuantizerOutput


class GumbelQuantizer(Quantizer):
    """logits = proj(z) (1x1 conv to one logit per code); in training a Gumbel-softmax
    sample (hard one-hot with straight-through gradients) mixes the codebook `embed`.
    In eval the code is the argmax of the logits (deterministic) unless `eval_noise`,
    which samples with Gumbel noise as taming's own eval path does.
    Loss: kl_weight * KL(softmax(logits) || uniform), averaged over positions."""

    def __init__(self, dim: int, config: QuantizerConfig):
        super().__init__(dim, config.codebook_size, config.usage_window)
        self.config = config
        self.proj = nn.Conv2d(dim, config.codebook_size, 1)
        self.embed = nn.Embedding(config.codebook_size, dim)  # taming's name: `embed`, not `embedding`
        self.train_state = nn.Module()
        self.train_state.register_buffer("step", torch.zeros((), dtype=torch.long))

    def temperature(self) -> float:
        """Cosine from tau_start to tau_end over tau_steps training batches, then tau_end."""
        c = self.config
        progress = min(1.0, self.train_state.step.item() / c.tau_steps)
        return c.tau_end + 0.5 * (c.tau_start - c.tau_end) * (1 + math.cos(math.pi * progress))

    def quantize(self, z: torch.Tensor) -> QuantizerOutput:
        logits = self.proj(z.to(self.proj.weight.dtype)).float()  # (B, K, h, w)
        if self.training or self.config.eval_noise:
            hard = self.config.straight_through if self.training else True
            one_hot = F.gumbel_softmax(logits, tau=self.temperature(), dim=1, hard=hard)
            indices = one_hot.argmax(dim=1)
        else:
            indices = logits.argmax(dim=1)  # (B, h, w)
            one_hot = F.one_hot(indices, self.codebook_size).permute(0, 3, 1, 2).to(logits.dtype)
        z_q = torch.einsum("bnhw,nd->bdhw", one_hot, self.embed.weight.float())
        q = F.softmax(logits, dim=1)
        kl = torch.sum(q * torch.log(q * self.codebook_size + 1e-10), dim=1).mean()
        if self.training:
            self.train_state.step += 1
        out = QuantizerOutput(z_q, indices, self.config.kl_weight * kl)
        out.stats["temperature"] = torch.tensor(self.temperature())
        return out

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        return self.embed.weight[indices].permute(0, 3, 1, 2)  # (B, h, w, D) -> (B, D, h, w)
