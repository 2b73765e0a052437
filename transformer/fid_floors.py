"""How low gFID can go: the FID, against the evaluated images, of as many real images of the
other split as there are samples (same class counts), as they are and through the tokenizer.

The first is the floor of the sample size (a perfect generator scores about this); the second
the floor of the tokenizer (a generator that got every code right scores about this). A gFID
close to the second asks for a better tokenizer, one far above it for a better stage 2."""
from __future__ import annotations

import torch

from vqgan import fid as fid_lib
from vqgan.data import ImageFolderDataset
from vqgan.model import VQGAN

from .metrics import balanced_labels, generation_fid

OTHER_SPLIT = {"val": "train", "train": "val"}


def balanced_positions(labels: list[int], num: int, num_classes: int, seed: int = 0,
                       class_names: list[str] | None = None) -> list[int]:
    """`num` positions into `labels` with the class counts of `balanced_labels(num, num_classes)`,
    drawn with `seed`."""
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed)).tolist()
    by_class: dict[int, list[int]] = {}
    for k in order:
        by_class.setdefault(labels[k], []).append(k)
    wanted = torch.bincount(balanced_labels(num, num_classes), minlength=num_classes).tolist() if num_classes else [num]
    picked = []
    for c, count in enumerate(wanted):
        have = by_class.get(c, [])
        if len(have) < count:
            name = class_names[c] if class_names else str(c)
            raise ValueError(f"the FID floors need {count} images of class '{name}' for {num} samples; "
                             f"the split they come from has {len(have)}: lower eval.num_samples")
        picked += have[:count]
    return sorted(picked)


@torch.no_grad()
def fid_floors(tokenizer: VQGAN, pool: ImageFolderDataset, num: int, num_classes: int, fid: fid_lib.FID,
               batch_size: int = 50) -> dict:
    """The two floors for `num` samples drawn from `pool` (images none of which is among the
    evaluated ones, whose real features `fid` already holds)."""
    labels = [pool.index.labels[j] for j in pool.subset] if num_classes else [0] * len(pool)
    positions = balanced_positions(labels, num, num_classes, class_names=pool.index.class_names)
    images = torch.stack([pool[k]["image"] for k in positions])  # (num, 3, H, W) in [-1, 1]
    device = tokenizer.device
    reconstructed = torch.cat([tokenizer.reconstruct(chunk.to(device)).cpu() for chunk in images.split(batch_size)])
    return {"fid_floor_real": generation_fid(fid, images, batch_size),
            "fid_floor_reconstructed": generation_fid(fid, reconstructed, batch_size),
            "fid_floor_images": len(positions)}
