"""Sampling image codes from a GPT: static KV cache, classifier-free guidance, top-k / top-p."""
from __future__ import annotations

from contextlib import contextmanager

import torch
from tqdm.auto import tqdm

from vqgan.hardware import native_bf16

from .decode_step import build_step, resolve_mode
from .model import GPT


def filter_logits(logits: torch.Tensor, top_k: int | None = None, top_p: float | None = None) -> torch.Tensor:
    """Keep the `top_k` largest logits and/or the smallest set with probability >= `top_p`;
    the rest become -inf. logits (..., V) -> (..., V)."""
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]  # (..., 1), no full sort
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        drop_sorted = cumulative - sorted_logits.softmax(dim=-1) >= top_p  # mass before this token already >= p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def check_sampling_args(model: GPT, temperature: float, top_k: int | None, top_p: float | None,
                        cfg_scale: float | None, steps: int | None = None, choice_temperature: float = 0.0) -> None:
    """Refuse out-of-range sampling arguments with a message that names them (`steps` and
    `choice_temperature`: MaskGIT's)."""
    if steps is not None and steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if choice_temperature < 0:
        raise ValueError(f"choice_temperature must be >= 0, got {choice_temperature}")
    vocab = model.config.vocab_size
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if top_k is not None and not 1 <= top_k <= vocab:
        raise ValueError(f"top_k must be in [1, {vocab}] (the number of image codes), got {top_k}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    if cfg_scale is not None and model.config.num_classes == 0 and not model.config.image_conditional:
        raise ValueError("cfg_scale needs a class-conditional or image-conditional model; this one is unconditional")
    if cfg_scale is not None and cfg_scale < 0:
        raise ValueError(f"cfg_scale must be >= 0, got {cfg_scale}")


@contextmanager
def evaluating(model: torch.nn.Module):
    """`model` in eval mode for the block, then back in the mode it was in."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def condition_prefix(model: GPT, cond: torch.Tensor | int, guided: bool) -> tuple[torch.Tensor, int]:
    """The condition tokens of `cond` (labels, condition codes, or a batch size for an
    unconditional model), with the null rows appended under guidance: (rows, P), and the batch."""
    prefix = model.condition_tokens(None, batch=cond) if isinstance(cond, int) else \
        model.condition_tokens(cond.to(model.device))
    batch = prefix.shape[0]
    if guided:
        prefix = torch.cat([prefix, model.null_tokens(batch)])  # rows: conditional, then null
    return prefix, batch


def draw_token(logits: torch.Tensor, temperature: float, top_k: int | None, top_p: float | None,
               cfg_scale: float | None, generator: torch.Generator | None) -> torch.Tensor:
    """One code per row from next-code logits (rows, V), conditional rows then null rows under
    guidance (mixed as u + s * (c - u)) -> (B, 1)."""
    if cfg_scale is not None:
        cond_logits, null_logits = logits.chunk(2)
        logits = null_logits + cfg_scale * (cond_logits - null_logits)
    logits = filter_logits(logits / temperature, top_k, top_p)
    return torch.multinomial(logits.softmax(dim=-1), 1, generator=generator)


@torch.inference_mode()
def generate(model: GPT, cond: torch.Tensor | int, num_tokens: int | None = None, temperature: float = 1.0,
             top_k: int | None = None, top_p: float | None = None, cfg_scale: float | None = None,
             generator: torch.Generator | None = None, use_cache: bool = True, decode: str = "auto",
             grid: tuple[int, int] | None = None) -> torch.Tensor:
    """Sample image codes, one token per step. Returns (B, num_tokens) int64 codes in [0, vocab).

    cond: class labels (B,) for a class-conditional model, or the batch size (int) for an
    unconditional one. cfg_scale: classifier-free guidance; conditional and null rows run
    in one batch and their logits mix as u + s * (c - u) (None: no guidance).
    The model runs in its own dtype (cast it to bf16 for bf16 sampling; see `sampling_dtype`).
    decode: how each step runs over the static KV cache, "auto" (a CUDA graph on CUDA, eager
    elsewhere), "eager" (the reference), "graph" or "compile" (see `decode_step`); all give the
    same codes. use_cache=False recomputes the whole sequence every step (the plain path).
    grid: (height, width) of a code grid at least the training grid, sampled with a sliding
    window (`sliding_window.generate_sliding`); returns (B, height, width) codes then.
    """
    if grid is not None:
        from .sliding_window import generate_sliding  # here: that module builds on this one

        return generate_sliding(model, cond, *grid, temperature=temperature, top_k=top_k, top_p=top_p,
                                cfg_scale=cfg_scale, generator=generator)
    check_sampling_args(model, temperature, top_k, top_p, cfg_scale)
    num_tokens = num_tokens or model.config.num_image_tokens
    if not 1 <= num_tokens <= model.config.num_image_tokens:
        raise ValueError(f"num_tokens must be in [1, {model.config.num_image_tokens}], got {num_tokens}")
    mode = resolve_mode(decode, model.device)
    with evaluating(model):
        return _generate(model, cond, num_tokens, temperature, top_k, top_p, cfg_scale, generator, use_cache, mode)


def _generate(model, cond, num_tokens, temperature, top_k, top_p, cfg_scale, generator, use_cache, mode):
    guided = cfg_scale is not None
    prefix, batch = condition_prefix(model, cond, guided)
    rows, prefix_len = prefix.shape

    out = torch.empty(batch, num_tokens, dtype=torch.long, device=prefix.device)
    if use_cache:
        cache = model.new_cache(rows)
        step = build_step(model, cache, mode)  # before the prefill: a graph's warm-up writes position 0
        logits = model.step(prefix, cache, start=0).float()  # prefill the prefix in one pass
    else:
        sequence = prefix
        logits = model.last_logits(sequence).float()
    for t in range(num_tokens):
        token = draw_token(logits, temperature, top_k, top_p, cfg_scale, generator)  # (B, 1)
        out[:, t] = token[:, 0]
        if t == num_tokens - 1:
            break
        feed = torch.cat([token, token]) if guided else token  # (rows, 1)
        if use_cache:
            logits = step(feed, prefix_len + t)
        else:
            sequence = torch.cat([sequence, feed], dim=1)
            logits = model.last_logits(sequence).float()
    return out


def sampling_dtype(device: str | torch.device) -> torch.dtype:
    """bf16 where the device computes it natively (decode steps read half the bytes), else fp32."""
    return torch.bfloat16 if native_bf16(device) else torch.float32


@torch.no_grad()
def sample_images(gpt: GPT, tokenizer, labels: torch.Tensor | None, count: int, batch_size: int, seed: int = 0,
                  progress: bool = False, grid: tuple[int, int] | None = None, **options) -> torch.Tensor:
    """`count` images (labels (count,) for a class-conditional GPT, None otherwise), sampled in
    batches with one seeded generator and decoded by `tokenizer`: (count, 3, H, W) on the
    [-1, 1] scale, on the CPU. `options` go to `generate` (`generate_masked` for MaskGIT);
    `grid` (height, width) asks a GPT for larger code grids (sliding-window sampling)."""
    from .maskgit_sampling import generate_masked  # here: that module builds on this one

    sample_codes = generate_masked if gpt.config.kind == "maskgit" else generate
    if grid is not None:
        if gpt.config.kind == "maskgit":
            raise ValueError("sliding-window sampling of larger grids needs a GPT, not MaskGIT")
        options["grid"] = tuple(grid)
    device = gpt.device
    generator = torch.Generator(device).manual_seed(seed)
    height, width = grid or (gpt.config.grid_size,) * 2
    chunks = []
    for start in tqdm(range(0, count, batch_size), desc="sampling", unit="batch", disable=not progress):
        size = min(batch_size, count - start)
        cond = labels[start:start + size].to(device) if labels is not None else size
        codes = sample_codes(gpt, cond, generator=generator, **options)
        chunks.append(tokenizer.decode(codes.view(size, height, width)).cpu())
    return torch.cat(chunks)
