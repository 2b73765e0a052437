"""MaskGIT's parallel decoding: start fully masked; at each of `steps` iterations predict every
masked code, sample them, keep the most confident and mask the rest again, until the schedule
reaches zero masked codes.

    codes = generate_masked(model, labels, steps=12, cfg_scale=2.0, generator=g)  # (B, T)
"""
from __future__ import annotations

import math

import torch

from .maskgit import MaskGIT, mask_ratio
from .sampling import check_sampling_args, condition_prefix, evaluating, filter_logits

SCHEDULES = ("cosine", "linear")


def masked_after_step(step: int, steps: int, length: int, schedule: str) -> int:
    """How many codes stay masked after iteration `step` (0-based) of `steps`: the cosine
    schedule of the paper, or a linear one (steps == length keeps one code per step)."""
    progress = (step + 1) / steps
    share = mask_ratio(torch.tensor(progress)).item() if schedule == "cosine" else 1.0 - progress
    return max(0, int(math.floor(share * length + 1e-6)))


@torch.inference_mode()
def generate_masked(model: MaskGIT, cond: torch.Tensor | int, steps: int = 12, temperature: float = 1.0,
                    top_k: int | None = None, top_p: float | None = None, cfg_scale: float | None = None,
                    generator: torch.Generator | None = None, choice_temperature: float = 4.5,
                    schedule: str = "cosine") -> torch.Tensor:
    """Sample (B, T) int64 codes in [0, vocab) in `steps` forward passes.

    cond, temperature, top_k, top_p and cfg_scale mean what they mean for `generate`; guidance
    mixes the logits as c + (s - 1) * (c - u), so s = 1 is exactly conditional sampling.
    choice_temperature: MaskGIT's annealed randomness: Gumbel noise of this scale times
    (1 - progress) is added to the log-confidence that decides which codes to keep.
    Each iteration keeps at least one new code, so every position is filled by the last one.
    """
    check_sampling_args(model, temperature, top_k, top_p, cfg_scale, steps, choice_temperature)
    if not isinstance(model, MaskGIT):
        raise TypeError(f"generate_masked needs a MaskGIT model, got {type(model).__name__} (use generate)")
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got '{schedule}'")
    with evaluating(model):
        return _generate_masked(model, cond, steps, temperature, top_k, top_p, cfg_scale, generator,
                                choice_temperature, schedule)


def _generate_masked(model, cond, steps, temperature, top_k, top_p, cfg_scale, generator, choice_temperature,
                     schedule):
    c = model.config
    device = model.device
    guided = cfg_scale is not None
    prefix, batch = condition_prefix(model, cond, guided)
    length = c.num_image_tokens
    tokens = torch.full((batch, length), c.mask_id, dtype=torch.long, device=device)
    rows = torch.arange(batch, device=device)[:, None]
    for step in range(steps):
        masked = tokens == c.mask_id  # (B, T)
        still_masked = masked.sum(dim=1)  # (B,) the same in every row
        if still_masked.max() == 0:
            break
        feed = torch.cat([tokens, tokens]) if guided else tokens
        logits = model(prefix, feed).float()  # (rows, T, V)
        if guided:
            cond_logits, null_logits = logits.chunk(2)
            logits = cond_logits + (cfg_scale - 1) * (cond_logits - null_logits)
        logits = filter_logits(logits / temperature, top_k, top_p)
        probs = logits.softmax(dim=-1)  # (B, T, V)
        sampled = torch.multinomial(probs.flatten(0, 1), 1, generator=generator).view(batch, length)
        confidence = probs.gather(-1, sampled[..., None])[..., 0].clamp_min(1e-30).log()  # (B, T)
        noise_scale = choice_temperature * (1 - (step + 1) / steps)
        if noise_scale > 0:
            uniform = torch.rand(batch, length, device=device, generator=generator).clamp(1e-20, 1 - 1e-7)
            confidence = confidence + noise_scale * -torch.log(-torch.log(uniform))  # Gumbel noise
        confidence = confidence.masked_fill(~masked, -math.inf)  # only masked positions compete
        target = masked_after_step(step, steps, length, schedule) if step < steps - 1 else 0
        keep = (still_masked - target).clamp(min=1).clamp(max=still_masked)  # (B,) new codes this step
        order = confidence.argsort(dim=1, descending=True)  # (B, T) most confident first
        chosen = torch.zeros_like(masked)
        chosen[rows, order] = torch.arange(length, device=device)[None] < keep[:, None]
        tokens = torch.where(chosen & masked, sampled, tokens)
    return tokens
