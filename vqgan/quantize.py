"""Vector quantizers. Every one maps a latent (B, D, h, w) to a `QuantizerOutput` and
looks codes up from integer indices with `lookup`, so they are interchangeable.

- `l2`: codes and latents l2-normalised, nearest by cosine similarity (ViT-VQGAN, LlamaGen).
- `classic`: full-dimension nearest neighbour by squared Euclidean distance (taming).

The codebook loss is ||sg(z) - q||^2 + beta * ||z - sg(q)||^2: beta weighs the
commitment term, as in the VQ-VAE paper (taming's default puts it on the other term).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.distributed as dist
import torch.nn.functional as F
from einops import rearrange
from torch import nn

QUANTIZER_KINDS = ("l2", "classic")


@dataclass
class QuantizerConfig:
    """Which quantizer, and its knobs. The code dimension is `VQGANConfig.embed_dim`."""

    kind: str = "l2"  # one of QUANTIZER_KINDS
    codebook_size: int = 1024
    beta: float = 0.25  # weight of the commitment term
    usage_window: int = 50  # batches over which codebook usage is measured

    def __post_init__(self):
        if self.kind not in QUANTIZER_KINDS:
            raise ValueError(f"'model.quantizer.kind' must be one of {QUANTIZER_KINDS}, got '{self.kind}'")
        if self.codebook_size < 2:
            raise ValueError("'model.quantizer.codebook_size' must be at least 2")
        if self.usage_window < 1:
            raise ValueError("'model.quantizer.usage_window' must be positive")


@dataclass
class QuantizerOutput:
    """What every quantizer returns."""

    z_q: torch.Tensor  # (B, D, h, w) quantized latent, straight-through gradients to z
    indices: torch.Tensor  # (B, h, w) int64 code ids
    loss: torch.Tensor  # () codebook loss (zero where a quantizer has none)
    stats: dict[str, torch.Tensor] = field(default_factory=dict)  # detached scalars for logging


def perplexity(counts: torch.Tensor) -> torch.Tensor:
    """exp(entropy) of a code histogram: the effective number of codes in use."""
    p = counts / counts.sum().clamp_min(1)
    return torch.exp(-(p * torch.log(p.clamp_min(1e-10))).sum())


class CodebookUsage(nn.Module):
    """Code histograms of the last `window` training batches (summed over DDP ranks)."""

    def __init__(self, codebook_size: int, window: int):
        super().__init__()
        self.register_buffer("history", torch.zeros(window, codebook_size))
        self.register_buffer("position", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def update(self, indices: torch.Tensor) -> None:
        counts = torch.bincount(indices.flatten(), minlength=self.history.shape[1]).float()
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(counts)
        self.history[self.position % self.history.shape[0]] = counts
        self.position += 1

    def usage(self) -> torch.Tensor:
        """Fraction of codes used at least once in the window."""
        return (self.history.sum(0) > 0).float().mean()

    def perplexity(self) -> torch.Tensor:
        return perplexity(self.history.sum(0))


class Quantizer(nn.Module):
    """Base class: subclasses implement `quantize` and `lookup`."""

    def __init__(self, dim: int, codebook_size: int, usage_window: int):
        super().__init__()
        self.dim = dim
        self.codebook_size = codebook_size
        self.usage = CodebookUsage(codebook_size, usage_window)

    def quantize(self, z: torch.Tensor) -> QuantizerOutput:
        raise NotImplementedError

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """(B, h, w) int64 -> (B, D, h, w) codes, equal to the eval forward's z_q."""
        raise NotImplementedError

    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        out = self.quantize(z)
        counts = torch.bincount(out.indices.flatten(), minlength=self.codebook_size).float()
        out.stats["perplexity"] = perplexity(counts)
        out.stats["batch_usage"] = (counts > 0).float().mean()
        if self.training:
            self.usage.update(out.indices)
        out.stats["usage"] = self.usage.usage()
        out.stats["window_perplexity"] = self.usage.perplexity()
        return out


def squared_distances(z: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """(N, D), (K, D) -> (N, K) as ||z||^2 + ||e||^2 - 2 z.e (taming's formula, same numerics)."""
    return (
        z.pow(2).sum(dim=1, keepdim=True)
        + codebook.pow(2).sum(dim=1)
        - 2 * torch.einsum("bd,dn->bn", z, rearrange(codebook, "n d -> d n"))
    )


class NearestNeighbourQuantizer(Quantizer):
    """Nearest code by Euclidean distance; with `normalize`, on the unit sphere (cosine)."""

    def __init__(self, dim: int, codebook_size: int, beta: float, usage_window: int, normalize: bool):
        super().__init__(dim, codebook_size, usage_window)
        self.beta = beta
        self.normalize = normalize
        self.embedding = nn.Embedding(codebook_size, dim)
        if normalize:
            nn.init.normal_(self.embedding.weight)  # uniform directions on the sphere
        else:
            nn.init.uniform_(self.embedding.weight, -1.0 / codebook_size, 1.0 / codebook_size)  # taming's

    def codebook(self) -> torch.Tensor:
        weight = self.embedding.weight
        return F.normalize(weight, dim=1) if self.normalize else weight

    def quantize(self, z: torch.Tensor) -> QuantizerOutput:
        b, d, h, w = z.shape
        z_flat = rearrange(z, "b d h w -> (b h w) d")
        if self.normalize:
            z_flat = F.normalize(z_flat, dim=1)
        codebook = self.codebook()
        indices = squared_distances(z_flat.detach(), codebook.detach()).argmin(dim=1)  # (N,)
        q = codebook[indices]  # (N, D), carries the codebook gradient
        loss = F.mse_loss(q, z_flat.detach()) + self.beta * F.mse_loss(z_flat, q.detach())
        q = z_flat + (q - z_flat).detach()  # straight-through estimator
        z_q = rearrange(q, "(b h w) d -> b d h w", b=b, h=h, w=w)
        return QuantizerOutput(z_q, indices.view(b, h, w), loss)

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        return rearrange(self.codebook()[indices], "b h w d -> b d h w")


def build_quantizer(config: QuantizerConfig, dim: int) -> Quantizer:
    """The quantizer named by `config.kind`, over codes of dimension `dim`."""
    if config.kind in ("l2", "classic"):
        return NearestNeighbourQuantizer(
            dim, config.codebook_size, config.beta, config.usage_window, normalize=config.kind == "l2"
        )
    raise ValueError(f"unknown quantizer kind '{config.kind}'")
