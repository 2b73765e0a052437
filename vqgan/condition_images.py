"""Condition images for image-conditional generation: derived from each image by a named
transform, or read from a paired folder (same relative path, any image format).

Derived conditions are computed on the (3, H, W) tensors in [-1, 1] that the datasets yield,
so stage 1 (`data.derive=silhouette`) and the stage-2 code cache see exactly the same images.
Each transform commutes with a horizontal flip, so a flipped image's condition is the flipped
condition.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from .data import DERIVED, IMAGE_EXTENSIONS, DatasetError, ImageIndex

BACKGROUND_LEVEL = 0.9  # [-1, 1] scale (about 242 of 255): brighter in every channel is background
LOWRES_FACTOR = 4


def derive(name: str, image: torch.Tensor) -> torch.Tensor:
    """The condition `name` of images (..., 3, H, W) in [-1, 1], same shape and scale:
    silhouette: black where the image is not (near-)white background, white elsewhere;
    grayscale: luminance in all three channels; lowres: downscaled 4x (area), scaled back up."""
    if name == "silhouette":
        foreground = (image < BACKGROUND_LEVEL).any(dim=-3, keepdim=True)  # (..., 1, H, W)
        return torch.where(foreground, -1.0, 1.0).to(image.dtype).expand_as(image).contiguous()
    if name == "grayscale":
        weights = torch.tensor([0.299, 0.587, 0.114], dtype=image.dtype, device=image.device).view(3, 1, 1)
        return (image * weights).sum(dim=-3, keepdim=True).expand_as(image).contiguous()
    if name == "lowres":
        batched = image if image.dim() == 4 else image[None]
        small = F.avg_pool2d(batched, LOWRES_FACTOR)
        back = F.interpolate(small, size=batched.shape[-2:], mode="nearest")
        return back if image.dim() == 4 else back[0]
    raise ValueError(f"unknown condition transform '{name}': choose from {DERIVED}")


def silhouette_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image IoU (B,) of the silhouettes of images a and b (B, 3, H, W) in [-1, 1]."""
    fa = (a < BACKGROUND_LEVEL).any(dim=1)
    fb = (b < BACKGROUND_LEVEL).any(dim=1)
    union = (fa | fb).flatten(1).sum(1)
    return torch.where(union > 0, (fa & fb).flatten(1).sum(1) / union.clamp_min(1), torch.ones_like(union, dtype=torch.float))


def paired_index(index: ImageIndex, root: str | Path, paired_root: str | Path) -> ImageIndex:
    """`index` with each path replaced by its partner under `paired_root`: the same relative
    path, any image extension. A missing partner is a DatasetError that names it."""
    root, paired_root = Path(root), Path(paired_root)
    if not paired_root.is_dir():
        raise DatasetError(f"condition folder not found: {paired_root}")
    partners = []
    for path in map(Path, index.paths):
        stem = paired_root / path.relative_to(root).with_suffix("")
        found = [stem.with_suffix(ext) for ext in IMAGE_EXTENSIONS if stem.with_suffix(ext).is_file()]
        if not found:
            raise DatasetError(f"{path} has no condition image in {paired_root}: expected "
                               f"{stem}.png (or {', '.join(IMAGE_EXTENSIONS[1:])})")
        partners.append(str(found[0]))
    return ImageIndex(partners, list(index.labels), list(index.class_names))


def condition_files(items: list[str]) -> list[Path]:
    """Image files from a list of files and folders (folders are searched recursively, sorted)."""
    from .data import image_files

    files = []
    for item in map(Path, items):
        if item.is_dir():
            files += image_files(item)
        elif item.is_file():
            files.append(item)
        else:
            raise FileNotFoundError(f"condition image not found: {item}")
    if not files:
        raise DatasetError(f"no images in {items}")
    return files


def load_condition_images(files: list[Path], resolution: int, derive_name: str = "") -> torch.Tensor:
    """(N, 3, resolution, resolution) in [-1, 1]: each file center-cropped as in evaluation, then
    `derive_name`d when the model was trained on derived conditions (a silhouette or grayscale
    image given as is stays what it is)."""
    from .data import image_transform, load_rgb

    transform = image_transform(resolution, train=False)
    images = torch.stack([transform(load_rgb(path)) for path in files])
    return derive(derive_name, images) if derive_name else images
