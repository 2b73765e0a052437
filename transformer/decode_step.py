"""The per-token decode step of `generate`, in three interchangeable forms:

- "eager": `GPT.step`, attention over the filled part of the cache only. The reference.
- "graph": `GPT.step_at` captured once per `generate` call as a CUDA graph over the static
  cache, then replayed each step: one launch instead of hundreds (CUDA only).
- "compile": `GPT.step_at` through `torch.compile` (any device; its first call compiles).

Each takes the token (B, 1) and its position (int) and returns logits (B, vocab) in fp32.
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from .model import GPT, KVCache

DECODE_MODES = ("auto", "eager", "graph", "compile")
DecodeStep = Callable[[torch.Tensor, int], torch.Tensor]


def resolve_mode(mode: str, device: torch.device) -> str:
    """"auto": a CUDA graph on CUDA, eager elsewhere (on a CPU the step is bound by its
    matrix products, which neither graphs nor compilation make faster)."""
    if mode not in DECODE_MODES:
        raise ValueError(f"decode must be one of {DECODE_MODES}, got '{mode}'")
    if mode == "auto":
        return "graph" if device.type == "cuda" else "eager"
    if mode == "graph" and device.type != "cuda":
        raise ValueError("decode='graph' needs a CUDA device; use 'compile' or 'eager'")
    return mode


def eager_step(model: GPT, cache: KVCache) -> DecodeStep:
    return lambda tokens, position: model.step(tokens, cache, start=position).float()


def compiled_step(model: GPT, cache: KVCache) -> DecodeStep:
    compiled = torch.compile(model.step_at, fullgraph=True, dynamic=False)
    position_tensor = torch.zeros((), dtype=torch.long, device=cache.k.device)

    def step(tokens: torch.Tensor, position: int) -> torch.Tensor:
        position_tensor.fill_(position)
        return compiled(tokens, cache, position_tensor).float()

    return step


def graphed_step(model: GPT, cache: KVCache) -> DecodeStep:
    """Capture `step_at` as a CUDA graph. Must run before the prefix is prefilled: the warm-up
    runs write at position 0 of the cache, which the prefill then overwrites."""
    rows, device = cache.k.shape[1], cache.k.device
    tokens = torch.zeros(rows, 1, dtype=torch.long, device=device)  # static inputs, refilled each step
    position = torch.zeros((), dtype=torch.long, device=device)
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):  # warm-up outside the capture, as CUDA graphs require
        for _ in range(2):
            model.step_at(tokens, cache, position)
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        logits = model.step_at(tokens, cache, position).float()

    def step(new_tokens: torch.Tensor, new_position: int) -> torch.Tensor:
        tokens.copy_(new_tokens)
        position.fill_(new_position)
        graph.replay()
        return logits  # overwritten by the next replay: callers use it before stepping again

    return step


def build_step(model: GPT, cache: KVCache, mode: str) -> DecodeStep:
    """The decode step for `mode` ("eager", "graph" or "compile"; see `resolve_mode`)."""
    return {"eager": eager_step, "compile": compiled_step, "graph": graphed_step}[mode](model, cache)
