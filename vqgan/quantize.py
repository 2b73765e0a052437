"""Vector quantizers. Every one maps a latent (B, D, h, w) to a `QuantizerOutput` and
looks codes up from integer indices with `lookup`, so they are interchangeable.

- `l2`: codes and latents l2-normalised, nearest by cosine similarity (ViT-VQGAN, LlamaGen).
- `classic`: full-dimension nearest neighbour by squared Euclidean distance (taming).
- `ema`: classic lookup, codebook updated by exponential moving averages (no codebook gradient).
- `gumbel`: taming's GumbelQuantize: Gumbel-softmax over logits from a 1x1 conv.
- `fsq`: finite scalar quantization (Mentzer et al., 2023): per-channel rounding, no codebook.

`l2`, `classic` and `ema` can restart dead codes (`restart_threshold`) from encoder outputs;
under DDP the decision is made on rank 0 and broadcast, so codebooks stay identical.

The codebook loss is ||sg(z) - q||^2 + beta * ||z - sg(q)||^2: beta weighs the
commitment term, as in the VQ-VAE paper (taming's default puts it on the other term).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
import torch.nn.functional as F
from einops import rearrange
from torch import nn

QUANTIZER_KINDS = ("l2", "classic", "ema", "gumbel", "fsq")


@dataclass
class QuantizerConfig:
    """Which quantizer, and its knobs. The code dimension is `VQGANConfig.embed_dim`."""

    kind: str = "l2"  # l2 / classic / ema / gumbel / fsq
    codebook_size: int = 1024  # fsq: must equal the product of fsq_levels
    beta: float = 0.25  # weight of the commitment term
    usage_window: int = 50  # batches over which codebook usage is measured
    decay: float = 0.99  # ema: codebook decay; all: decay of the counts that find dead codes
    epsilon: float = 1e-5  # ema: Laplace smoothing of the counts
    kmeans_init: bool = False  # ema: k-means initialisation of the codebook on the first batch
    restart_threshold: float = 0.0  # l2/classic/ema: restart codes whose decayed count falls below (0: off)
    tau_start: float = 1.0  # gumbel: temperature at step 0
    tau_end: float = 0.0625  # gumbel: temperature after tau_steps (cosine schedule)
    tau_steps: int = 10000  # gumbel: length of the temperature schedule, in training batches
    kl_weight: float = 5e-4  # gumbel: weight of the KL divergence to the uniform prior
    straight_through: bool = True  # gumbel: hard one-hot forward with soft gradients in training
    eval_noise: bool = False  # gumbel: sample with Gumbel noise in eval too, as taming does
    fsq_levels: list[int] = field(default_factory=lambda: [8, 5, 5, 5])  # fsq: levels per channel

    def __post_init__(self):
        if self.kind not in QUANTIZER_KINDS:
            raise ValueError(f"'model.quantizer.kind' must be one of {QUANTIZER_KINDS}, got '{self.kind}'")
        if self.codebook_size < 2:
            raise ValueError("'model.quantizer.codebook_size' must be at least 2")
        if self.usage_window < 1:
            raise ValueError("'model.quantizer.usage_window' must be positive")
        if not 0 < self.decay < 1:
            raise ValueError("'model.quantizer.decay' must be in (0, 1)")
        if self.restart_threshold < 0:
            raise ValueError("'model.quantizer.restart_threshold' must be >= 0")
        if self.restart_threshold > 0 and self.kind in ("gumbel", "fsq"):
            raise ValueError(f"'model.quantizer.restart_threshold' applies to l2, classic and ema, not {self.kind}")
        if self.tau_start <= 0 or self.tau_end <= 0 or self.tau_steps < 1:
            raise ValueError("'model.quantizer.tau_start', 'tau_end' and 'tau_steps' must be positive")
        if self.kind == "fsq":
            if not self.fsq_levels or min(self.fsq_levels) < 3:
                raise ValueError("'model.quantizer.fsq_levels' must be a list of ints >= 3")
            if math.prod(self.fsq_levels) != self.codebook_size:
                raise ValueError(f"'model.quantizer.codebook_size' must equal the product of fsq_levels "
                                 f"{list(self.fsq_levels)} = {math.prod(self.fsq_levels)}")


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

    def adopt_codebook(self) -> None:
        """Bring the training-time state (not exported) in line with codebook weights just
        loaded from an export, so that fine-tuning continues from that codebook."""

    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        # Distances, EMA statistics, k-means and counts decide discrete choices or running
        # statistics: they run in fp32 whatever the autocast state or the model's dtype.
        with torch.autocast(z.device.type, enabled=False):
            out = self.quantize(z.float())
        out.z_q = out.z_q.to(z.dtype)  # back to the caller's dtype (bf16 under autocast)
        counts = torch.bincount(out.indices.flatten(), minlength=self.codebook_size).float()
        out.stats["perplexity"] = perplexity(counts)
        out.stats["batch_usage"] = (counts > 0).float().mean()
        if self.training:
            self.usage.update(out.indices)
        out.stats.update(self.usage_stats())
        return out

    def usage_stats(self) -> dict[str, torch.Tensor]:
        """Codebook usage and perplexity over the usage window (the last training batches)."""
        return {"usage": self.usage.usage(), "window_perplexity": self.usage.perplexity()}


def squared_distances(z: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """(N, D), (K, D) -> (N, K) as ||z||^2 + ||e||^2 - 2 z.e (taming's formula, same numerics)."""
    return (
        z.pow(2).sum(dim=1, keepdim=True)
        + codebook.pow(2).sum(dim=1)
        - 2 * torch.einsum("bd,dn->bn", z, rearrange(codebook, "n d -> d n"))
    )


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum over DDP ranks (in place), a no-op in a single process."""
    if _distributed():
        dist.all_reduce(t)
    return t


@torch.no_grad()
def restart_dead_codes(codebook: torch.Tensor, counts: torch.Tensor, z: torch.Tensor, threshold: float) -> torch.Tensor:
    """Re-initialise codes whose decayed count is below `threshold` from rows of `z`.

    codebook (K, D) and counts (K,) are changed in place; z (N, D) are this batch's
    encoder outputs. Rank 0 decides which codes and which replacement rows, and
    broadcasts both, so every rank keeps an identical codebook. Returns the (K,) mask.
    """
    dead = (counts < threshold).to(torch.uint8)
    replacements = z[torch.randint(z.shape[0], (codebook.shape[0],), device=z.device)].to(codebook.dtype)
    if _distributed():
        dist.broadcast(dead, src=0)
        if dead.any():
            dist.broadcast(replacements, src=0)
    mask = dead.bool()
    if mask.any():
        codebook[mask] = replacements[mask]
        counts[mask] = 1.0  # a restarted code gets one assignment's grace before it can die again
    return mask


class NearestNeighbourQuantizer(Quantizer):
    """Nearest code by Euclidean distance; with `normalize`, on the unit sphere (cosine)."""

    def __init__(self, dim: int, codebook_size: int, beta: float, usage_window: int, normalize: bool,
                 restart_threshold: float = 0.0, decay: float = 0.99):
        super().__init__(dim, codebook_size, usage_window)
        self.beta = beta
        self.normalize = normalize
        self.restart_threshold = restart_threshold
        self.decay = decay
        self.embedding = nn.Embedding(codebook_size, dim)
        if normalize:
            nn.init.normal_(self.embedding.weight)  # uniform directions on the sphere
        else:
            nn.init.uniform_(self.embedding.weight, -1.0 / codebook_size, 1.0 / codebook_size)  # taming's
        self.train_state = nn.Module()  # training-only buffers, left out of exports
        self.train_state.register_buffer("code_counts", torch.ones(codebook_size))
        self.train_state.register_buffer("restarts", torch.zeros((), dtype=torch.long))  # codes restarted so far

    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        out = super().forward(z)
        out.stats["restarts"] = self.train_state.restarts.float()  # codes restarted so far
        return out

    def codebook(self) -> torch.Tensor:
        weight = self.embedding.weight
        return F.normalize(weight, dim=1) if self.normalize else weight

    def nearest(self, z_flat: torch.Tensor) -> torch.Tensor:
        return squared_distances(z_flat.detach(), self.codebook().detach().float()).argmin(dim=1)

    def quantize(self, z: torch.Tensor) -> QuantizerOutput:
        b, d, h, w = z.shape
        z_flat = rearrange(z, "b d h w -> (b h w) d")
        if self.normalize:
            z_flat = F.normalize(z_flat, dim=1)
        indices = self.nearest(z_flat)  # (N,)
        q = self.codebook()[indices].float()  # (N, D), carries the codebook gradient
        loss = F.mse_loss(q, z_flat.detach()) + self.beta * F.mse_loss(z_flat, q.detach())
        out = self._straight_through(z_flat, q, indices, loss, (b, h, w))
        if self.training and self.restart_threshold > 0:
            self._count_and_restart(indices, z_flat.detach())
        return out

    @staticmethod
    def _straight_through(z_flat, q, indices, loss, bhw) -> QuantizerOutput:
        b, h, w = bhw
        q = z_flat + (q - z_flat).detach()  # straight-through estimator
        z_q = rearrange(q, "(b h w) d -> b d h w", b=b, h=h, w=w)
        return QuantizerOutput(z_q, indices.view(b, h, w), loss)

    @torch.no_grad()
    def _count_and_restart(self, indices: torch.Tensor, z_flat: torch.Tensor) -> None:
        counts = all_reduce_sum(torch.bincount(indices, minlength=self.codebook_size).float())
        self.train_state.code_counts.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        dead = restart_dead_codes(self.embedding.weight.data, self.train_state.code_counts, z_flat,
                                  self.restart_threshold)
        self.train_state.restarts += dead.sum()

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        return rearrange(self.codebook()[indices], "b h w d -> b d h w")


class EMAQuantizer(NearestNeighbourQuantizer):
    """Classic lookup; the codebook follows exponential moving averages of the vectors
    assigned to each code (VQ-VAE-2). Only the commitment term is a loss."""

    def __init__(self, dim: int, codebook_size: int, beta: float, usage_window: int, decay: float,
                 epsilon: float, restart_threshold: float, kmeans_init: bool):
        super().__init__(dim, codebook_size, beta, usage_window, normalize=False,
                         restart_threshold=restart_threshold, decay=decay)
        self.epsilon = epsilon
        self.embedding.weight.requires_grad_(False)  # updated by EMA, never by the optimizer
        self.train_state.register_buffer("ema_sum", self.embedding.weight.detach().clone())
        self.train_state.register_buffer("initialized", torch.tensor(not kmeans_init))

    def quantize(self, z: torch.Tensor) -> QuantizerOutput:
        b, d, h, w = z.shape
        z_flat = rearrange(z, "b d h w -> (b h w) d")
        if self.training and not self.train_state.initialized:
            self._kmeans_init(z_flat.detach())
        indices = self.nearest(z_flat)
        q = self.embedding.weight[indices].float()
        loss = self.beta * F.mse_loss(z_flat, q.detach())
        out = self._straight_through(z_flat, q, indices, loss, (b, h, w))
        if self.training:
            self._ema_update(indices, z_flat.detach())
        return out

    @torch.no_grad()
    def _ema_update(self, indices: torch.Tensor, z_flat: torch.Tensor) -> None:
        state, k = self.train_state, self.codebook_size
        counts = all_reduce_sum(torch.bincount(indices, minlength=k).float())  # (K,)
        sums = all_reduce_sum(torch.zeros_like(state.ema_sum).index_add_(0, indices, z_flat.float()))  # (K, D)
        state.code_counts.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        state.ema_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        total = state.code_counts.sum()
        smoothed = (state.code_counts + self.epsilon) / (total + k * self.epsilon) * total  # Laplace smoothing
        self.embedding.weight.copy_(state.ema_sum / smoothed[:, None])
        if self.restart_threshold > 0:
            dead = restart_dead_codes(self.embedding.weight.data, state.code_counts, z_flat, self.restart_threshold)
            state.ema_sum[dead] = self.embedding.weight[dead] * state.code_counts[dead, None]
            state.restarts += dead.sum()

    @torch.no_grad()
    def adopt_codebook(self) -> None:
        # no k-means over a trained codebook; the EMA sums restart from it (sum / count = code)
        self.train_state.ema_sum.copy_(self.embedding.weight * self.train_state.code_counts[:, None])
        self.train_state.initialized.fill_(True)

    @torch.no_grad()
    def _kmeans_init(self, z_flat: torch.Tensor, iterations: int = 10) -> None:
        """k-means on the first batch (rank 0's, broadcast) as the starting codebook."""
        centers = z_flat[torch.randint(z_flat.shape[0], (self.codebook_size,), device=z_flat.device)].clone()
        for _ in range(iterations):
            assign = squared_distances(z_flat, centers).argmin(dim=1)
            counts = torch.bincount(assign, minlength=self.codebook_size).float()
            sums = torch.zeros_like(centers).index_add_(0, assign, z_flat)
            filled = counts > 0
            centers[filled] = sums[filled] / counts[filled, None]
        if _distributed():
            dist.broadcast(centers, src=0)
        self.embedding.weight.copy_(centers)
        self.train_state.ema_sum.copy_(centers)  # code_counts start at 1, so sum / count = center
        self.train_state.initialized.fill_(True)


def build_quantizer(config: QuantizerConfig, dim: int) -> Quantizer:
    """The quantizer named by `config.kind`, over codes of dimension `dim`."""
    c = config
    if c.kind in ("l2", "classic"):
        return NearestNeighbourQuantizer(dim, c.codebook_size, c.beta, c.usage_window, normalize=c.kind == "l2",
                                         restart_threshold=c.restart_threshold, decay=c.decay)
    if c.kind == "ema":
        return EMAQuantizer(dim, c.codebook_size, c.beta, c.usage_window, c.decay, c.epsilon,
                            c.restart_threshold, c.kmeans_init)
    if c.kind == "gumbel":
        from .quantize_gumbel import GumbelQuantizer

        return GumbelQuantizer(dim, c)
    if c.kind == "fsq":
        from .quantize_fsq import FSQuantizer

        return FSQuantizer(dim, c)
    raise ValueError(f"unknown quantizer kind '{c.kind}'")
