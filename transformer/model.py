"""A decoder-only GPT over the code grid of a VQGAN tokenizer.

Token ids: image codes take [0, vocab_size); condition tokens follow. A class-conditional
model has one token per class plus a "null" class (for classifier-free guidance) at
vocab_size + num_classes; an unconditional model has a single start token at vocab_size.
The head predicts image codes only, so nothing else can ever be sampled.

Choices: pre-norm RMSNorm, SwiGLU MLP, rotary position embeddings over the 2-D grid
(half of each head's rotary pairs follow the row, half the column; condition tokens
get no rotation), fused scaled-dot-product attention, a zero-initialised head.
"""
from __future__ import annotations

import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from vqgan.export import load_export, write_export
from vqgan.schema import require


STAGE2_KINDS = ("gpt", "maskgit")
CONDITION_TOKENIZER = "condition_tokenizer"  # where an image-conditional export keeps its second tokenizer


@dataclass
class GPTConfig:
    """The stage-2 model over a tokenizer's codes: an autoregressive GPT (`kind: gpt`) or a
    masked-token MaskGIT (`kind: maskgit`, transformer/maskgit.py); the two share every block."""

    kind: str = "gpt"  # gpt: causal, one code per step; maskgit: bidirectional, parallel decoding
    vocab_size: int = 512  # number of image codes (the tokenizer's codebook size); training: 0 = from it
    grid_size: int = 8  # side of the code grid (grid_size**2 image tokens); training: 0 = from the tokenizer
    num_classes: int = 0  # 0: unconditional; training: -1 = the data folder's number of class folders
    class_names: list[str] = field(default_factory=list)  # for sample grids; saved with the export
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 256
    dropout: float = 0.0  # on the residual branches
    attn_dropout: float = 0.0
    cond_drop: float = 0.1  # training: labels replaced by the null class with this probability
    label_smoothing: float = 0.0  # training loss only (MaskGIT's paper: 0.1); validation is plain cross-entropy
    rope_base: float = 100.0  # grid sides are small: a low base spreads the frequencies over them
    # Image condition (taming's Net2Net): the codes of a second, conditioning tokenizer come first,
    # in their own id range, at 2-D positions scaled onto the image grid. 0: no image condition.
    cond_vocab_size: int = 0  # the conditioning tokenizer's codebook size
    cond_grid_size: int = 0  # the side of its code grid
    condition_derive: str = ""  # condition images derived from images by this transform; "": given as is

    def __post_init__(self):
        require(self.kind in STAGE2_KINDS, "model.kind", f"must be one of {STAGE2_KINDS}, got '{self.kind}'")
        for key in ("n_layer", "n_head", "n_embd"):
            require(getattr(self, key) > 0, f"model.{key}", "must be positive")
        # 0 / -1: not known yet; training fills them in from the tokenizer and the data (`resolve_model_config`)
        require(self.vocab_size >= 0 and self.grid_size >= 0, "model.vocab_size",
                "and model.grid_size must be positive (or 0: the tokenizer's)")
        require(self.num_classes >= -1, "model.num_classes", "must be >= 0 (or -1: the data folder's)")
        require(self.n_embd % self.n_head == 0, "model.n_embd", f"must be divisible by model.n_head={self.n_head}")
        require((self.n_embd // self.n_head) % 4 == 0, "model.n_embd",
                "/ n_head (the head size) must be divisible by 4 for 2-D rotary embeddings")
        require(0 <= self.cond_drop < 1, "model.cond_drop", "must be in [0, 1)")
        require(0 <= self.label_smoothing < 1, "model.label_smoothing", "must be in [0, 1)")
        require(not self.class_names or len(self.class_names) == self.num_classes, "model.class_names",
                f"has {len(self.class_names)} names for model.num_classes={self.num_classes}")
        require(self.cond_vocab_size >= 0 and self.cond_grid_size >= 0, "model.cond_vocab_size",
                "and model.cond_grid_size must be >= 0")
        require(not (self.cond_vocab_size or self.cond_grid_size) or self.num_classes <= 0, "model.num_classes",
                "must be 0 with an image condition (one condition source at a time)")

    @property
    def resolved(self) -> bool:
        """True once vocab_size, grid_size and num_classes hold real values (no 0 / -1 left) and
        an image condition, if any, has both its sizes."""
        return (self.vocab_size > 0 and self.grid_size > 0 and self.num_classes >= 0
                and (self.cond_vocab_size > 0) == (self.cond_grid_size > 0))

    @property
    def class_names_or_numbers(self) -> list[str]:
        """A name per class for logs and metrics: `class_names`, or "0", "1", ... without them."""
        return self.class_names or [str(k) for k in range(self.num_classes)]

    @property
    def num_image_tokens(self) -> int:
        return self.grid_size**2

    @property
    def image_conditional(self) -> bool:
        return self.cond_vocab_size > 0

    @property
    def prefix_len(self) -> int:
        """Condition tokens before the image: the condition codes, or one class (or start) token."""
        return self.cond_grid_size**2 if self.image_conditional else 1

    @property
    def cond_offset(self) -> int:
        """Token id of condition code 0 (image condition): after the codes and the start token."""
        return self.vocab_size + 1

    @property
    def cond_null(self) -> int:
        """The learned null condition token (image condition), repeated over the whole prefix."""
        return self.cond_offset + self.cond_vocab_size

    @property
    def null_class(self) -> int:
        """Token id of the null class (class-conditional models)."""
        return self.vocab_size + self.num_classes

    @property
    def total_vocab(self) -> int:
        """Image codes, then the condition tokens (classes + null, or one start token, then the
        condition codes + their null for an image condition)."""
        if self.image_conditional:
            return self.cond_null + 1
        return self.vocab_size + (self.num_classes + 1 if self.num_classes else 1)

    @property
    def mask_id(self) -> int:
        """MaskGIT's [MASK] token: the id after the condition tokens."""
        return self.total_vocab

    @property
    def embedding_rows(self) -> int:
        return self.total_vocab + (1 if self.kind == "maskgit" else 0)


def grid_angles(grid_size: int, head_dim: int, base: float, scale: float = 1.0) -> torch.Tensor:
    """(grid_size**2, head_dim / 2) rotary angles: the first half of the pairs turn with the
    row index, the second half with the column index, each over its own frequency ladder.
    `scale` stretches the indices (a condition grid laid over a finer image grid)."""
    quarter = head_dim // 4
    freqs = base ** (-torch.arange(quarter, dtype=torch.float64) / quarter)  # (D/4,)
    pos = torch.arange(grid_size, dtype=torch.float64) * scale
    rows = pos.repeat_interleave(grid_size)  # raster order: row-major
    cols = pos.repeat(grid_size)
    return torch.cat([rows[:, None] * freqs, cols[:, None] * freqs], dim=1).float()  # (T, D/2)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x (B, H, L, D), cos/sin (L, D/2): rotate the pairs (x[i], x[i + D/2])."""
    x1, x2 = x.float().chunk(2, dim=-1)
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).type_as(x)


class KVCache:
    """Keys and values of every layer for up to `max_len` positions, allocated once."""

    def __init__(self, config: GPTConfig, batch: int, max_len: int, device, dtype):
        shape = (config.n_layer, batch, config.n_head, max_len, config.n_embd // config.n_head)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)


class SelfAttention(nn.Module):
    """Multi-head attention with 2-D rotary positions: causal for the GPT, bidirectional for
    MaskGIT (`config.kind`)."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.causal = config.kind == "gpt"
        self.n_head = config.n_head
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd, bias=False)
        self.proj = nn.Linear(config.n_embd, config.n_embd, bias=False)
        self.attn_dropout = config.attn_dropout
        self.resid_dropout = nn.Dropout(config.dropout)

    def rotated_qkv(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor):
        """x (B, L, C) -> q, k, v (B, H, L, D), with q and k turned by the rotary angles."""
        q, k, v = rearrange(self.qkv(x), "b l (three h d) -> three b h l d", three=3, h=self.n_head)
        return apply_rotary(q, cos, sin), apply_rotary(k, cos, sin), v

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                cache: tuple[torch.Tensor, torch.Tensor] | None = None, start: int = 0) -> torch.Tensor:
        b, length, _ = x.shape
        q, k, v = self.rotated_qkv(x, cos, sin)
        dropout = self.attn_dropout if self.training else 0.0
        if cache is None:
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=self.causal)
        else:
            cache_k, cache_v = cache  # (B, H, max_len, D) views into the static cache
            cache_k[:, :, start:start + length] = k
            cache_v[:, :, start:start + length] = v
            k, v = cache_k[:, :, :start + length], cache_v[:, :, :start + length]
            if length == 1:  # one new token sees every cached position
                out = F.scaled_dot_product_attention(q, k, v)
            else:  # a block of new tokens: causal within it, full view of what came before
                mask = torch.ones(length, start + length, dtype=torch.bool, device=x.device).tril(diagonal=start)
                out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.resid_dropout(self.proj(rearrange(out, "b h l d -> b l (h d)")))

    def decode(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
               cache: tuple[torch.Tensor, torch.Tensor], position: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
        """One new token at a tensor `position`, with shapes that never change from step to step
        (what a captured CUDA graph or a compiled step needs): x (B, 1, C), visible (1, max_len)
        bool marks the cache positions it may attend to."""
        q, k, v = self.rotated_qkv(x, cos, sin)
        cache_k, cache_v = cache  # (B, H, max_len, D)
        cache_k.index_copy_(2, position.view(1), k)
        cache_v.index_copy_(2, position.view(1), v)
        out = F.scaled_dot_product_attention(q, cache_k, cache_v, attn_mask=visible)  # (B, H, 1, D)
        return self.proj(rearrange(out, "b h l d -> b l (h d)"))


class SwiGLU(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        hidden = 64 * math.ceil(8 * config.n_embd / 3 / 64)  # ~(8/3) n_embd: same cost as a 4x GELU MLP
        self.gate_up = nn.Linear(config.n_embd, 2 * hidden, bias=False)
        self.down = nn.Linear(hidden, config.n_embd, bias=False)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.dropout(self.down(F.silu(gate) * up))


class Block(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.norm1 = nn.RMSNorm(config.n_embd, eps=1e-6)
        self.attn = SelfAttention(config)
        self.norm2 = nn.RMSNorm(config.n_embd, eps=1e-6)
        self.mlp = SwiGLU(config)

    def forward(self, x, cos, sin, cache=None, start=0):
        x = x + self.attn(self.norm1(x), cos, sin, cache, start)
        return x + self.mlp(self.norm2(x))

    def decode(self, x, cos, sin, cache, position, visible):
        x = x + self.attn.decode(self.norm1(x), cos, sin, cache, position, visible)
        return x + self.mlp(self.norm2(x))


class GPT(nn.Module):
    """`forward(prefix, codes)` -> next-code logits (B, T, vocab_size) for teacher forcing;
    `step(tokens, cache, start)` runs new positions against a `KVCache` for sampling."""

    KIND = "gpt"  # the config.kind this class builds

    def __init__(self, config: GPTConfig):
        super().__init__()
        if config.kind != self.KIND:
            raise ValueError(f"{type(self).__name__} builds model.kind={self.KIND}, got '{config.kind}' "
                             "(transformer.generator.build_model picks the class for a config)")
        if not config.resolved:
            raise ValueError(f"GPTConfig has unset sizes (vocab_size={config.vocab_size}, grid_size={config.grid_size}, "
                             f"num_classes={config.num_classes}): fill them in with resolve_model_config")
        self.config = config
        self.tok_emb = nn.Embedding(config.embedding_rows, config.n_embd)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.norm = nn.RMSNorm(config.n_embd, eps=1e-6)
        self.head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        head_dim = config.n_embd // config.n_head
        image = grid_angles(config.grid_size, head_dim, config.rope_base)  # (T, D/2)
        if config.image_conditional:  # condition codes at their place on the image grid
            prefix = grid_angles(config.cond_grid_size, head_dim, config.rope_base,
                                 scale=config.grid_size / config.cond_grid_size)  # (P, D/2)
        else:  # no rotation for the class token
            prefix = torch.zeros(config.prefix_len, head_dim // 2)
        angles = torch.cat([prefix, image])
        self.register_buffer("rope_cos", angles.cos(), persistent=False)
        self.register_buffer("rope_sin", angles.sin(), persistent=False)
        self._init_weights()

    def _init_weights(self) -> None:
        std = 0.02
        for name, p in self.named_parameters():
            if name.endswith(("attn.proj.weight", "mlp.down.weight")):
                nn.init.normal_(p, 0.0, std / math.sqrt(2 * self.config.n_layer))  # residual outputs
            elif p.dim() == 2:
                nn.init.normal_(p, 0.0, std)
        nn.init.zeros_(self.head.weight)  # uniform predictions at the start: loss = ln(vocab)

    # --- conditioning ------------------------------------------------------------------

    def condition_tokens(self, labels: torch.Tensor | None, batch: int | None = None) -> torch.Tensor:
        """Class labels (B,) -> prefix (B, 1); unconditional models take `batch` instead.
        A label equal to `num_classes` is the null class. Image-conditional models take the
        condition codes (B, h, w) or (B, h*w) instead of labels -> prefix (B, h*w)."""
        c = self.config
        if c.image_conditional:
            return self._condition_code_tokens(labels)
        if c.num_classes == 0:
            if labels is not None:
                raise ValueError("this model is unconditional: it takes no class labels")
            return torch.full((batch, 1), c.vocab_size, dtype=torch.long, device=self.head.weight.device)
        if labels is None:
            raise ValueError(f"this model is class-conditional: give labels in [0, {c.num_classes})")
        if labels.min() < 0 or labels.max() > c.num_classes:
            raise ValueError(f"class labels must lie in [0, {c.num_classes}), got [{labels.min()}, {labels.max()}]")
        return (labels.long() + c.vocab_size).view(-1, 1)

    def _condition_code_tokens(self, codes: torch.Tensor | None) -> torch.Tensor:
        c = self.config
        if codes is None or codes.is_floating_point():
            raise ValueError(f"this model is image-conditional: give the condition codes (B, {c.cond_grid_size}, "
                             f"{c.cond_grid_size}) of its conditioning tokenizer")
        codes = codes.reshape(codes.shape[0], -1)
        if codes.shape[1] != c.prefix_len:
            raise ValueError(f"condition codes must be (B, {c.cond_grid_size}, {c.cond_grid_size}), got "
                             f"{codes.shape[1]} codes per image")
        if codes.numel() and (codes.min() < 0 or codes.max() >= c.cond_vocab_size):
            raise ValueError(f"condition codes must lie in [0, {c.cond_vocab_size}), got [{codes.min()}, {codes.max()}]")
        return codes.long() + c.cond_offset

    def null_tokens(self, batch: int) -> torch.Tensor:
        """The null prefix (B, prefix_len) that classifier-free guidance compares against."""
        c = self.config
        if c.image_conditional:
            return torch.full((batch, c.prefix_len), c.cond_null, dtype=torch.long, device=self.head.weight.device)
        if self.config.num_classes == 0:
            raise ValueError("classifier-free guidance needs a class-conditional model")
        return torch.full((batch, 1), self.config.null_class, dtype=torch.long, device=self.head.weight.device)

    # --- forward passes --------------------------------------------------------------------

    def _run(self, tokens: torch.Tensor, start: int, cache: KVCache | None) -> torch.Tensor:
        length = tokens.shape[1]
        cos, sin = self.rope_cos[start:start + length], self.rope_sin[start:start + length]
        h = self.drop(self.tok_emb(tokens))  # (B, L, C)
        for i, block in enumerate(self.blocks):
            h = block(h, cos, sin, None if cache is None else (cache.k[i], cache.v[i]), start)
        return self.norm(h)

    def forward(self, prefix: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """prefix (B, P), codes (B, T) -> logits (B, T, vocab_size); logits[:, t] predicts codes[:, t]."""
        tokens = torch.cat([prefix, codes[:, :-1]], dim=1)  # (B, P + T - 1)
        h = self._run(tokens, 0, None)
        return self.head(h[:, prefix.shape[1] - 1:])

    def predict_for_loss(self, prefix: torch.Tensor, codes: torch.Tensor,
                         generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (B, T, vocab) for `codes` and which positions the loss counts (B, T) bool: all
        of them here (MaskGIT masks some with `generator` and counts those)."""
        return self(prefix, codes), torch.ones_like(codes, dtype=torch.bool)

    def token_losses(self, prefix: torch.Tensor, codes: torch.Tensor, label_smoothing: float = 0.0,
                     generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Cross-entropy of every image token (B, T) in nats, and which of them the loss counts
        (B, T) bool."""
        logits, counted = self.predict_for_loss(prefix, codes, generator)  # (B, T, vocab), (B, T)
        # flattened, not (B, vocab, T): the class dimension last and contiguous is the faster layout
        losses = F.cross_entropy(logits.float().flatten(0, 1), codes.flatten(), reduction="none",
                                 label_smoothing=label_smoothing).view_as(codes)  # (B, T)
        return losses, counted

    def loss(self, prefix: torch.Tensor, codes: torch.Tensor, label_smoothing: float = 0.0,
             generator: torch.Generator | None = None) -> torch.Tensor:
        """Mean cross-entropy over the counted image tokens (nats per token)."""
        losses, counted = self.token_losses(prefix, codes, label_smoothing, generator)
        return losses[counted].mean()

    def new_cache(self, batch: int, device=None, dtype=None) -> KVCache:
        c = self.config
        weight = self.head.weight
        return KVCache(c, batch, c.prefix_len + c.num_image_tokens - 1, device or weight.device, dtype or weight.dtype)

    def step(self, tokens: torch.Tensor, cache: KVCache, start: int) -> torch.Tensor:
        """Feed positions [start, start + L) through the cache -> logits of the last one (B, vocab)."""
        return self.head(self._run(tokens, start, cache)[:, -1])

    def step_at(self, tokens: torch.Tensor, cache: KVCache, position: torch.Tensor) -> torch.Tensor:
        """`step` for one token (B, 1) at a 0-d tensor `position`, with static shapes: the same
        logits (B, vocab), computed over the whole cache with the later positions masked. This
        is the step that `generate` captures as a CUDA graph or compiles."""
        cos = self.rope_cos.index_select(0, position.view(1))  # (1, D/2)
        sin = self.rope_sin.index_select(0, position.view(1))
        visible = (torch.arange(cache.k.shape[3], device=tokens.device) <= position)[None]  # (1, max_len)
        h = self.tok_emb(tokens)  # (B, 1, C)
        for i, block in enumerate(self.blocks):
            h = block.decode(h, cos, sin, (cache.k[i], cache.v[i]), position, visible)
        return self.head(self.norm(h)[:, -1])

    def last_logits(self, tokens: torch.Tensor) -> torch.Tensor:
        """Without a cache: the whole sequence (B, L) -> logits of its last position (B, vocab)."""
        return self.head(self._run(tokens, 0, None)[:, -1])

    # --- export -----------------------------------------------------------------------

    def save_pretrained(self, directory: str | Path, tokenizer_dir: str | Path | None = None,
                        condition_tokenizer_dir: str | Path | None = None) -> None:
        """Write config.json + model.safetensors (and copies of the tokenizer folder and of the
        conditioning tokenizer's), atomically."""

        def copy_tokenizer(tmp: Path) -> None:
            if tokenizer_dir is not None:
                shutil.copytree(tokenizer_dir, tmp / "tokenizer")
            if condition_tokenizer_dir is not None:
                shutil.copytree(condition_tokenizer_dir, tmp / CONDITION_TOKENIZER)

        write_export(directory, "gpt", self.config, self.state_dict(), extra=copy_tokenizer)

    @classmethod
    def from_pretrained(cls, directory: str | Path, map_location="cpu") -> "GPT":
        """Load an export in eval mode, built directly on `map_location` (see `load_pretrained`)."""
        return load_export(cls, GPTConfig, directory, map_location).eval()

    @property
    def device(self) -> torch.device:
        return self.head.weight.device
