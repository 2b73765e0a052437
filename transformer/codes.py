"""The code cache: a dataset tokenized once by the frozen tokenizer (each image and its
horizontal flip), stored as safetensors and reused until the tokenizer, the file list
or the image size changes."""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
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


def cache_key(tokenizer_dir: Path, index: ImageIndex, resolution: int) -> dict[str, str]:
    """What the cached codes depend on, each part hashed separately so a rebuild can say why."""
    return {
        "tokenizer": file_sha256(tokenizer_dir / WEIGHTS_NAME),
        "files": listing_sha256(index),
        "resolution": str(resolution),
    }


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
    codes: torch.Tensor  # (N, 2, h, w) int64: view 0 the image, view 1 its flip
    labels: torch.Tensor  # (N,) int64
    path: Path
    cond_codes: torch.Tensor | None = None  # (N, 2, hc, wc): the condition of each view, or None


@torch.no_grad()
def encode_dataset(tokenizer: VQGAN, index: ImageIndex, resolution: int, batch_size: int, num_workers: int,
                   derive: str = "") -> torch.Tensor:
    """Every image of `index` (center crop, then `derive`d if named) and its mirror image ->
    codes (N, 2, h, w)."""
    dataset = ImageFolderDataset(index, list(range(len(index.paths))), resolution, train=False, derive=derive)
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers)
    device = next(tokenizer.parameters()).device
    chunks = []
    for batch in tqdm(loader, desc="tokenizing images", unit="batch"):
        x = batch["image"].to(device)
        views = torch.stack([tokenizer.encode(x), tokenizer.encode(x.flip(-1))], dim=1)  # (B, 2, h, w)
        chunks.append(views.cpu())
    return torch.cat(chunks)


def load_or_build(tokenizer: VQGAN, tokenizer_dir: Path, index: ImageIndex, resolution: int, cache_dir: Path,
                  batch_size: int = 64, num_workers: int = 0, condition: ConditionSource | None = None) -> CodeCache:
    """Reuse `cache_dir/codes-<key>.safetensors` if its key matches, else tokenize and write it.
    With a `condition`, the condition codes are cached beside the codes, under the same key."""
    key = cache_key(Path(tokenizer_dir), index, resolution)
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
    codes = encode_dataset(tokenizer, index, resolution, batch_size, num_workers)
    labels = torch.tensor(index.labels, dtype=torch.long)
    tensors = {"codes": codes.to(_storage(tokenizer)), "labels": labels}
    cond = None
    if condition is not None:
        cond = encode_dataset(condition.tokenizer, condition.index, resolution, batch_size, num_workers,
                              condition.derive)
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
    (from an `EpochSampler`), a training item draws the image or its flip from (seed, epoch,
    image), so an epoch's choices are the same after a resume."""

    def __init__(self, cache: CodeCache, subset: list[int], random_view: bool, seed: int = 0):
        self.cache = cache
        self.subset = subset
        self.random_view = random_view
        self.seed = seed

    def __len__(self) -> int:
        return len(self.subset)

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        epoch, i = key if isinstance(key, tuple) else (0, key)
        j = self.subset[i]
        view = item_seed(self.seed, epoch, j) & 1 if self.random_view else 0
        item = {"codes": self.cache.codes[j, view].flatten(), "label": self.cache.labels[j]}
        if self.cache.cond_codes is not None:
            item["cond"] = self.cache.cond_codes[j, view].flatten()
        return item
