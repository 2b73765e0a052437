"""Loss terms of the VQGAN, as pure functions (no state, no logging)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def reconstruction_loss(x: torch.Tensor, x_hat: torch.Tensor, kind: str = "l1") -> torch.Tensor:
    """Mean absolute ("l1") or squared ("l2") error."""
    if kind == "l1":
        return (x - x_hat).abs().mean()
    if kind == "l2":
        return F.mse_loss(x_hat, x)
    raise ValueError(f"unknown reconstruction loss '{kind}'")


def discriminator_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor, kind: str = "hinge") -> torch.Tensor:
    """Hinge: mean(relu(1 - D(x))) + mean(relu(1 + D(G(z)))), halved; "non_saturating": softplus form."""
    if kind == "hinge":
        return 0.5 * (F.relu(1.0 - logits_real).mean() + F.relu(1.0 + logits_fake).mean())
    if kind == "non_saturating":
        return 0.5 * (F.softplus(-logits_real).mean() + F.softplus(logits_fake).mean())
    raise ValueError(f"unknown adversarial loss '{kind}'")


def generator_loss(logits_fake: torch.Tensor, kind: str = "hinge") -> torch.Tensor:
    """The generator's adversarial term: -mean(D(G(z))) (hinge) or softplus(-D(G(z)))."""
    if kind == "hinge":
        return -logits_fake.mean()
    if kind == "non_saturating":
        return F.softplus(-logits_fake).mean()
    raise ValueError(f"unknown adversarial loss '{kind}'")


def adaptive_weight(nll: torch.Tensor, gan: torch.Tensor, last_layer: torch.Tensor, max_weight: float = 1e4) -> torch.Tensor:
    """||d nll / d last|| / (||d gan / d last|| + 1e-4), clamped to [0, max_weight], detached.

    Balances the adversarial gradient against the reconstruction gradient at the
    decoder's last layer (taming-transformers' `calculate_adaptive_weight`).
    """
    nll_grad = torch.autograd.grad(nll, last_layer, retain_graph=True)[0]
    gan_grad = torch.autograd.grad(gan, last_layer, retain_graph=True)[0]
    weight = nll_grad.norm() / (gan_grad.norm() + 1e-4)
    return weight.clamp(0.0, max_weight).detach()


def adversarial_factor(batch: int, start: int, ramp: int = 0) -> float:
    """0 before `start` training batches, then 1 (reached linearly over `ramp` batches)."""
    if start < 0 or batch < start:
        return 0.0
    if ramp <= 0:
        return 1.0
    return min(1.0, (batch - start + 1) / ramp)


def lecam_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor,
               ema_real: torch.Tensor, ema_fake: torch.Tensor) -> torch.Tensor:
    """LeCam regulariser (Tseng et al., 2021): keeps D's outputs near their moving averages."""
    return F.relu(logits_real - ema_fake).pow(2).mean() + F.relu(ema_real - logits_fake).pow(2).mean()
