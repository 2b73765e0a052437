"""Generation quality of a GPT export (gFID of class-balanced samples against real images) and
its validation loss per class."""
from __future__ import annotations

import math

import torch
from torch.utils.data import DataLoader
from torchmetrics import Metric

from vqgan.images import to_uint8


def balanced_labels(num_samples: int, num_classes: int) -> torch.Tensor:
    """num_samples labels, as even over the classes as the count allows (the first classes get one more)."""
    return torch.arange(num_samples) % num_classes if num_classes else torch.zeros(0, dtype=torch.long)


def image_features(fid, images: torch.Tensor, batch_size: int = 50) -> torch.Tensor:
    """`fid`'s features (N, F) of `images` (N, 3, H, W) on the [-1, 1] scale, in batches."""
    return torch.cat([fid.features(to_uint8(chunk).to(fid.device)) for chunk in images.split(batch_size)])


def generation_fid(fid, images: torch.Tensor, batch_size: int = 50) -> float:
    """FID of `images` against the real features already in `fid` (which keeps them)."""
    return fid.fid_of_features(image_features(fid, images, batch_size))


class LossByClass(Metric):
    """Bits per counted token, per class: the loss summed over the tokens of each class's images
    over many batches (and, under DDP, over every process), then divided by their number."""

    def __init__(self, num_classes: int):
        super().__init__()
        self.add_state("nats", torch.zeros(num_classes, dtype=torch.float32), dist_reduce_fx="sum")
        self.add_state("tokens", torch.zeros(num_classes, dtype=torch.float32), dist_reduce_fx="sum")

    def update(self, losses: torch.Tensor, counted: torch.Tensor, labels: torch.Tensor) -> None:
        """losses (B, T) nats, counted (B, T) bool, labels (B,) in [0, num_classes)."""
        self.nats.index_add_(0, labels, (losses * counted).sum(1))
        self.tokens.index_add_(0, labels, counted.sum(1).float())

    def compute(self) -> torch.Tensor:
        """(num_classes,) bits per token; NaN for a class none of whose images were seen."""
        return self.nats / self.tokens / math.log(2)

    def overall(self) -> float:
        """Bits per token over every class together (each token weighs the same)."""
        return (self.nats.sum() / self.tokens.sum() / math.log(2)).item()


@torch.no_grad()
def code_bits(gpt, tokenizer, dataset, batch_size: int = 50, seed: int = 0) -> dict:
    """Bits per code of a class-conditional or unconditional `gpt` on the codes `tokenizer` gives
    `dataset`'s images (as they are, unflipped): overall, and per class for a class-conditional
    model. A MaskGIT counts its masked codes, masks drawn from `seed`."""
    conditional = gpt.config.num_classes > 0
    by_class = LossByClass(max(gpt.config.num_classes, 1)).to(gpt.head.weight.device)  # one "class" if unconditional
    masks = torch.Generator(gpt.head.weight.device).manual_seed(seed)
    for batch in DataLoader(dataset, batch_size=batch_size):
        codes = tokenizer.encode(batch["image"].to(tokenizer.device)).flatten(1)  # (B, T)
        if conditional:
            labels = batch["label"].to(codes.device)  # (B,)
            prefix = gpt.condition_tokens(labels)
        else:
            labels = torch.zeros_like(codes[:, 0])
            prefix = gpt.condition_tokens(None, batch=len(codes))
        by_class.update(*gpt.token_losses(prefix, codes, generator=masks), labels)
    metrics = {"bits_per_code": by_class.overall()}
    if conditional:
        bits = by_class.compute().tolist()
        metrics["bits_per_code_by_class"] = {
            name: b for name, b in zip(gpt.config.class_names_or_numbers, bits) if not math.isnan(b)}
    return metrics
