"""The code cache: a dataset tokenized once by the frozen tokenizer (each image and its
horizontal flip, optionally translated by a few pixels too), stored as safetensors and
reused until the tokenizer, the file list, the image size or the shifts change."""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from vqgan.data import ImageFolderDataset, ImageIndex
from vqgan.io import atomic_path
from vqgan.export import WEIGHTS_NAME
from vqgan.model import VQGAN
from vqgan.resume import item_seed

log = logging.getLogger(__name__)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def listing_sha256(index: ImageIndex) -> str:
    """A digest of the file list: paths, sizes and labels."""
    listing = "\n".join(f"{p}\t{Path(p).stat().st_size}\t{label}" for p, label in zip(index.paths, index.labels))
    return hashlib.sha256(listing.encode()).hexdigest()


def cache_key(tokenizer_dir: Path, index: ImageIndex, resolution: int, shift: int = 0) -> dict[str, str]:
    """What the cached codes depend on, each part hashed separately so a rebuild can say why."""
    key = {
        "tokenizer": file_sha256(tokenizer_dir / WEIGHTS_NAME),
        "files": listing_sha256(index),
        "resolution": str(resolution),
    }
    if shift:  # absent when 0, so caches written before shifts existed stay valid
        key["shift"] = str(shift)
    return key


def shift_offsets(shift: int) -> list[tuple[int, int]]:
    """Every (dy, dx) with |dy|, |dx| <= shift, the unshifted (0, 0) first."""
    steps = range(-shift, shift + 1)
    return [(0, 0)] + [(dy, dx) for dy in steps for dx in steps if (dy, dx) != (0, 0)]


def translate(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """(B, C, H, W) images moved by (dy, dx) pixels; the border pixels extend into the gap
    (the background, for images on a plain one)."""
    if dy == dx == 0:
        return x
    s = max(abs(dy), abs(dx))
    height, width = x.shape[-2:]
    padded = F.pad(x, (s, s, s, s), mode="replicate")  # (B, C, H + 2s, W + 2s)
    return padded[..., s - dy:s - dy + height, s - dx:s - dx + width]


def training_views(num_views: int, flip: bool) -> list[int]:
    """The views a training item draws from: all of them, or only the unflipped (even) ones."""
    return list(range(num_views)) if flip else list(range(0, num_views, 2))


@dataclass
class ConditionSource:
    """Image conditions for the cache: a conditioning tokenizer and where its images come from
    (`index`: the paired folder's images, or the data's own; `derive`: a named transform)."""

    tokenizer: VQGAN
    tokenizer_dir: Path
    index: ImageIndex
    derive: str = ""

    def key(self) -> dict[str, str]:
        return {"condition_tokenizer": file_sha256(self.tokenizer_dir / WEIGHTS_NAME),
                "condition_images": f"{self.derive}:{listing_sha256(self.index)}"}


@dataclass
class CodeCache:
    # (N, V, h, w) int64, V = 2 x len(shift_offsets): for each offset the image then its
    # flip, so view 0 is the image as it is and view 1 its flip
    codes: torch.Tensor
    labels: torch.Tensor  # (N,) int64
    path: Path
    cond_codes: torch.Tensor | None = None  # (N, V, hc, wc): the condition of each view, or None


@torch.no_grad()
def encode_dataset(tokenizer: VQGAN, index: ImageIndex, resolution: int, batch_size: int, num_workers: int,
                   derive: str = "", shift: int = 0) -> torch.Tensor:
    """Every image of `index` (center crop, then `derive`d if named), translated by each of
    `shift_offsets(shift)`, and the mirror image of each -> codes (N, V, h, w)."""
    dataset = ImageFolderDataset(index, list(range(len(index.paths))), resolution, train=False, derive=derive)
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers)
    device = next(tokenizer.parameters()).device
    chunks = []
    offsets = shift_offsets(shift)
    for batch in tqdm(loader, desc="tokenizing images", unit="batch"):
        x = batch["image"].to(device)
        moved = [translate(x, dy, dx) for dy, dx in offsets]
        views = [tokenizer.encode(view) for image in moved for view in (image, image.flip(-1))]
        chunks.append(torch.stack(views, dim=1).cpu())  # (B, V, h, w)
    return torch.cat(chunks)


def load_or_build(tokenizer: VQGAN, tokenizer_dir: Path, index: ImageIndex, resolution: int, cache_dir: Path,
                  batch_size: int = 64, num_workers: int = 0, condition: ConditionSource | None = None,
                  shift: int = 0) -> CodeCache:
    """Reuse `cache_dir/codes-<key>.safetensors` if its key matches, else tokenize and write it.
    With a `condition`, the condition codes are cached beside the codes, under the same key
    (a shifted view's condition is its condition image shifted alike)."""
    key = cache_key(Path(tokenizer_dir), index, resolution, shift)
    if condition is not None:
        key.update(condition.key())
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    path = Path(cache_dir) / f"codes-{digest}.safetensors"
    if path.is_file():
        state = load_file(str(path))
        log.info("reusing code cache %s", path)
        cond = state["cond_codes"].long() if "cond_codes" in state else None
        return CodeCache(state["codes"].long(), state["labels"].long(), path, cond)

    latest = Path(cache_dir) / "latest.json"
    if latest.is_file():
        previous = json.loads(latest.read_text())
        changed = [part for part in key if previous.get(part) != key[part]]
        print(f"code cache out of date ({', '.join(changed)} changed): tokenizing again")
    codes = encode_dataset(tokenizer, index, resolution, batch_size, num_workers, shift=shift)
    labels = torch.tensor(index.labels, dtype=torch.long)
    tensors = {"codes": codes.to(_storage(tokenizer)), "labels": labels}
    cond = None
    if condition is not None:
        cond = encode_dataset(condition.tokenizer, condition.index, resolution, batch_size, num_workers,
                              condition.derive, shift)
        tensors["cond_codes"] = cond.to(_storage(condition.tokenizer))
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=key)
    with atomic_path(latest) as tmp:
        tmp.write_text(json.dumps(key, indent=1))
    return CodeCache(codes, labels, path, cond)


def _storage(tokenizer: VQGAN) -> torch.dtype:
    return torch.int16 if tokenizer.codebook_size <= 2**15 else torch.int32


class CodeDataset(Dataset):
    """Items: codes (h*w,) int64 in raster order, and the label. Keyed by (epoch, position)
    (from an `EpochSampler`), a training item draws one of `views` from (seed, epoch, image),
    so an epoch's choices are the same after a resume; without `views`, view 0 (the image)."""

    def __init__(self, cache: CodeCache, subset: list[int], views: list[int] | None = None, seed: int = 0):
        self.cache = cache
        self.subset = subset
        self.views = views or [0]
        self.seed = seed

    def __len__(self) -> int:
        return len(self.subset)

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        epoch, i = key if isinstance(key, tuple) else (0, key)
        j = self.subset[i]
        view = self.views[item_seed(self.seed, epoch, j) % len(self.views)]
        item = {"codes": self.cache.codes[j, view].flatten(), "label": self.cache.labels[j]}
        if self.cache.cond_codes is not None:
            item["cond"] = self.cache.cond_codes[j, view].flatten()
        return item
