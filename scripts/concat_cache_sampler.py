"""A sampler with a KV cache grown by concatenation, as taming-transformers' `sample_with_past`
does it (written from that idea, over this project's GPT): every step each layer returns its
new keys and values stacked, the step's presents are appended to a list, and the next step
concatenates the whole list again. It is the baseline `bench.py` measures `generate` against;
for the same seed it samples the same codes (a test checks)."""
import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from einops import rearrange

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from transformer.model import GPT, GPTConfig  # noqa: E402
from transformer.sampling import draw_token, generate  # noqa: E402


def _forward_with_past(model: GPT, tokens: torch.Tensor, past: torch.Tensor | None, start: int):
    """tokens (B, L) at positions [start, start + L); past (n_layer, 2, B, H, start, D) or None
    -> last logits (B, vocab) and this call's presents (n_layer, 2, B, H, L, D)."""
    length = tokens.shape[1]
    cos, sin = model.rope_cos[start:start + length], model.rope_sin[start:start + length]
    h = model.tok_emb(tokens)
    presents = []
    for i, block in enumerate(model.blocks):
        attn = block.attn
        q, k, v = attn.rotated_qkv(block.norm1(h), cos, sin)
        presents.append(torch.stack((k, v)))
        if past is not None:
            k = torch.cat((past[i, 0], k), dim=-2)
            v = torch.cat((past[i, 1], v), dim=-2)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=past is None and length > 1)
        h = h + attn.proj(rearrange(out, "b h l d -> b l (h d)"))
        h = h + block.mlp(block.norm2(h))
    return model.head(model.norm(h)[:, -1]), torch.stack(presents)


@torch.inference_mode()
def concat_cache_generate(model: GPT, labels: torch.Tensor, top_k: int | None = None,
                          generator: torch.Generator | None = None) -> torch.Tensor:
    """Class-conditional sampling without guidance -> codes (B, num_image_tokens)."""
    model.eval()
    x = model.condition_tokens(labels.to(model.device))
    past: list[torch.Tensor] = []
    codes = []
    for n in range(model.config.num_image_tokens):
        whole_past = torch.cat(past, dim=-2) if past else None  # copies every cached key and value
        logits, present = _forward_with_past(model, x, whole_past, start=0 if n == 0 else n)
        past.append(present)
        x = draw_token(logits.float(), 1.0, top_k, None, None, generator)  # (B, 1)
        codes.append(x)
    return torch.cat(codes, dim=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--grid", type=int, default=8)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=512, grid_size=args.grid, num_classes=10, n_layer=args.layers,
                          n_embd=args.width, n_head=args.width // 64)).eval()
    labels = torch.arange(args.batch) % 10
    for name, sample in (("concatenating cache", concat_cache_generate), ("generate", generate)):
        start = time.perf_counter()
        codes = sample(model, labels, top_k=100, generator=torch.Generator().manual_seed(0))
        print(f"{name:>20}: {time.perf_counter() - start:.3f} s, codes {codes[0, :6].tolist()} ...")


if __name__ == "__main__":
    main()
