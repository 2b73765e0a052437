"""How low gFID can go: the FID, against the evaluated images, of as many real images of the
other split as there are samples (same class counts), as they are and through the tokenizer.

The first is the floor of the sample size (a perfect generator scores about this); the second
the floor of the tokenizer (a generator that got every code right scores about this). A gFID
close to the second asks for a better tokenizer, one far above it for a better stage 2; and
`class_costs` says which classes' samples make up that distance."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from vqgan import fid as fid_lib
from vqgan.data import ImageFolderDataset
from vqgan.model import VQGAN

from .metrics import balanced_labels, generation_fid, image_features

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


@dataclass
class Floors:
    """The floors (`metrics`), and the features (N, F) and classes (N,) of the reconstructed
    real images, which `class_costs` puts in place of a class's samples."""

    metrics: dict
    reconstructed_features: torch.Tensor
    labels: torch.Tensor


@torch.no_grad()
def fid_floors(tokenizer: VQGAN, pool: ImageFolderDataset, num: int, num_classes: int, fid: fid_lib.FID,
               batch_size: int = 50) -> Floors:
    """The two floors for `num` samples drawn from `pool` (images none of which is among the
    evaluated ones, whose real features `fid` already holds)."""
    labels = [pool.index.labels[j] for j in pool.subset] if num_classes else [0] * len(pool)
    positions = balanced_positions(labels, num, num_classes, class_names=pool.index.class_names)
    images = torch.stack([pool[k]["image"] for k in positions])  # (num, 3, H, W) in [-1, 1]
    device = tokenizer.device
    reconstructed = torch.cat([tokenizer.reconstruct(chunk.to(device)).cpu() for chunk in images.split(batch_size)])
    features = image_features(fid, reconstructed, batch_size)  # (num, F)
    metrics = {"fid_floor_real": generation_fid(fid, images, batch_size),
               "fid_floor_reconstructed": fid.fid_of_features(features),
               "fid_floor_images": len(positions)}
    return Floors(metrics, features, torch.tensor([labels[k] for k in positions]))


def class_costs(fid: fid_lib.FID, sample_features: torch.Tensor, sample_labels: torch.Tensor, floors: Floors,
                class_names: list[str]) -> dict[str, float]:
    """Per class, the gFID with that class's samples (features (N, F), labels (N,)) replaced by
    the floor's reconstructed real images of the class: the gFID minus this is what the class's
    samples cost. Samples and floor images come in the same class counts (`balanced_labels`)."""
    device = sample_features.device
    sample_labels, floor_labels = sample_labels.to(device), floors.labels.to(device)
    stand_ins = floors.reconstructed_features.to(device)
    costs = {}
    for c, name in enumerate(class_names):
        mixed = sample_features.clone()
        mixed[sample_labels == c] = stand_ins[floor_labels == c]
        costs[name] = fid.fid_of_features(mixed)
    return costs
