"""Sampling code grids larger than the GPT's training grid, as taming-transformers does for its
wide landscapes: each code is predicted from the training-size window that contains it, the
window centred on the code where it fits and pushed against the border where it does not.

    codes = generate_sliding(gpt, labels, height=8, width=24, generator=g)  # (B, 8, 24)

Every code costs one forward pass over a whole window (no KV cache: the window moves), so a
grid of N codes costs N passes of grid_size**2 tokens; `generate` costs about one such pass
for all its codes together.
"""
from __future__ import annotations

import torch

from .model import GPT
from .sampling import check_sampling_args, condition_prefix, draw_token, evaluating


def window_start(position: int, size: int, window: int) -> int:
    """First row (or column) of the `window`-wide window that predicts `position` in a grid of
    `size`: `position` sits at offset window // 2 inside it, except near the borders (taming's
    placement)."""
    half = window // 2
    if position <= half:
        return 0
    if size - position < half:
        return size - window
    return position - half


@torch.inference_mode()
def generate_sliding(model: GPT, cond: torch.Tensor | int, height: int, width: int, temperature: float = 1.0,
                     top_k: int | None = None, top_p: float | None = None, cfg_scale: float | None = None,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """(B, height, width) int64 codes for a grid at least as large as the training grid, in
    raster order. The sampling knobs mean what they mean for `generate`; at the training size
    this draws the same codes as `generate` under the same generator."""
    check_sampling_args(model, temperature, top_k, top_p, cfg_scale)
    g = model.config.grid_size
    if model.config.image_conditional:  # taming slides the condition's window too; not built here
        raise ValueError("sliding-window sampling takes class-conditional or unconditional GPTs, not image-conditional")
    if height < g or width < g:
        raise ValueError(f"a sliding-window grid must be at least the training grid {g}x{g}, got {height}x{width}")
    with evaluating(model):
        guided = cfg_scale is not None
        prefix, batch = condition_prefix(model, cond, guided)
        # Codes not sampled yet are 0: the causal mask keeps every prediction from seeing them.
        codes = torch.zeros(batch, height, width, dtype=torch.long, device=model.device)
        for i in range(height):
            top = window_start(i, height, g)
            for j in range(width):
                left = window_start(j, width, g)
                window = codes[:, top:top + g, left:left + g].reshape(batch, g * g)  # (B, T)
                feed = torch.cat([window, window]) if guided else window
                t = (i - top) * g + (j - left)  # the code's place in the window
                logits = model(prefix, feed[:, :t + 1])[:, t].float()  # (rows, V): predicts code t
                codes[:, i, j] = draw_token(logits, temperature, top_k, top_p, cfg_scale, generator)[:, 0]
        return codes
