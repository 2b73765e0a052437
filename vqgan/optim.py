"""Optimizer pieces shared by both stages: parameter groups and the learning-rate schedule."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass
class OptimConfig:
    lr: float = 2e-4
    betas: list[float] = field(default_factory=lambda: [0.5, 0.9])
    weight_decay: float = 0.0  # applied to matrices and conv kernels only
    warmup_steps: int = 100
    min_lr_ratio: float = 0.1  # the cosine decays to lr * min_lr_ratio at trainer.max_steps
    grad_clip: float = 1.0  # max gradient norm; 0 turns clipping off

    def __post_init__(self):
        if not self.lr > 0 or self.lr == float("inf"):  # "not >" catches NaN too
            raise ValueError(f"'optim.lr' must be a positive number, got {self.lr}")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError("'optim.betas' must be two numbers in [0, 1)")
        if self.warmup_steps < 0 or self.weight_decay < 0 or self.grad_clip < 0:
            raise ValueError("'optim.warmup_steps', 'optim.weight_decay' and 'optim.grad_clip' must be >= 0")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ValueError("'optim.min_lr_ratio' must be in [0, 1]")


def param_groups(module: nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on tensors of rank >= 2 (matrices, kernels, embeddings), none on biases and norms."""
    params = [p for p in module.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def adamw(groups: list[dict], lr: float, betas, device: torch.device) -> torch.optim.AdamW:
    """AdamW; on CUDA the fused kernel (one launch for all parameters instead of several per tensor)."""
    return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas), fused=device.type == "cuda")


def warmup_cosine(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """Learning-rate multiplier: linear warmup to 1, then cosine down to `min_ratio` at `total`
    (`total` = 0: not fixed yet, as while a time budget is being measured; holds at 1)."""
    if step < warmup:
        return (step + 1) / warmup
    if total <= 0:
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
