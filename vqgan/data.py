"""Image folders as datasets: scan, split, decode any Pillow mode to RGB, crop, flip.

Used by both stages. Labels, when asked for, are the sorted names of the first-level
subfolders of `root`, so ids are stable across runs and machines.
"""
from __future__ import annotations

import dataclasses
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms
from tqdm.auto import tqdm

from .schema import require
from .io import atomic_write_text
from .resume import EpochSampler, class_balanced_weights, item_seed

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
DERIVED = ("silhouette", "grayscale", "lowres")  # condition transforms (vqgan/condition_images.py)


@dataclass
class DataConfig:
    """Where the images are and how they are fed."""

    root: str = "data/emoji"
    resolution: int = 32  # side of the square crop, in pixels
    use_labels: bool = True  # class label = first-level subfolder
    val_fraction: float = 0.1  # share of images held out for validation
    split_seed: int = 0  # the split depends on this seed and the file list only
    batch_size: int = 32
    num_workers: int = 2
    flip: bool = True  # random horizontal flip in training
    balance_classes: bool = False  # training draws every class equally often (small ones repeat within an epoch)
    derive: str = ""  # train on a condition derived from each image: silhouette / grayscale / lowres

    def __post_init__(self):
        require(self.derive in ("", *DERIVED), "data.derive",
                "must be '', silhouette, grayscale or lowres")
        require(self.resolution > 0, "data.resolution", "must be positive")
        require(0.0 <= self.val_fraction < 1.0, "data.val_fraction", "must be in [0, 1)")
        require(self.batch_size > 0, "data.batch_size", "must be positive")
        require(self.num_workers >= 0, "data.num_workers", "must be >= 0")
        require(self.use_labels or not self.balance_classes, "data.balance_classes", "needs data.use_labels=true")


class DatasetError(ValueError):
    """A folder that yields no usable image, or a file that cannot be decoded."""


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode -> RGB; transparency is composited on white, 16-bit scaled to 8."""
    if image.mode.startswith("I") or image.mode == "F":
        values = np.asarray(image, dtype=np.float32)
        if image.mode.startswith("I;16") or values.max() > 255:
            values = values / 257.0  # 65535 -> 255
        image = Image.fromarray(np.clip(values + 0.5, 0, 255).astype(np.uint8), mode="L")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def load_rgb(path: str | Path, draft_size: int | None = None) -> Image.Image:
    """Decode one image file to RGB; a DatasetError names the file if that fails.

    Pillow's decompression-bomb guard stays on, from its warning size up (MAX_IMAGE_PIXELS,
    about 89 megapixels): such an image raises like a corrupt file instead of being decoded.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                if draft_size:
                    image.draft("RGB", (draft_size, draft_size))  # JPEG: decode at reduced size
                image.load()
                return to_rgb(image)
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as err:
        raise DatasetError(f"cannot read image {path}: {err}") from err


@dataclass
class ImageIndex:
    """The readable images of a folder, their labels and the class names."""

    paths: list[str]
    labels: list[int]
    class_names: list[str]
    unreadable: list[str] = dataclasses.field(default_factory=list)

    def split(self, val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
        """Deterministic, disjoint (train, val) index lists."""
        order = torch.randperm(len(self.paths), generator=torch.Generator().manual_seed(seed)).tolist()
        n_val = int(round(len(order) * val_fraction))
        return sorted(order[n_val:]), sorted(order[:n_val])


def image_files(root: Path) -> list[Path]:
    """Image files under `root`, sorted, following symlinked folders (a class folder is often a
    link to data kept elsewhere); each real folder is read once, so a link loop ends."""
    files, seen = [], set()
    for folder, subfolders, names in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            subfolders[:] = []
            continue
        seen.add(real)
        files += [Path(folder) / n for n in names if Path(n).suffix.lower() in IMAGE_EXTENSIONS]
    return sorted(p for p in files if p.is_file())


def scan_images(root: str | Path, use_labels: bool = True, check: bool = True, progress: bool = True) -> ImageIndex:
    """Find the images under `root` (recursively) and, with `check`, decode each once.

    Unreadable files are skipped with one warning that counts them (they are listed
    in `ImageIndex.unreadable`); a folder with no readable image is an error.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"image folder not found: {root}")
    files = image_files(root)
    if use_labels:
        loose = [p for p in files if p.parent == root]
        if loose:
            raise DatasetError(
                f"{root}: labels come from subfolders, but {len(loose)} images lie directly in it "
                f"(e.g. {loose[0].name}); move them into class folders or set data.use_labels=false"
            )
        class_names = sorted({p.relative_to(root).parts[0] for p in files})
    else:
        class_names = []
    class_ids = {name: i for i, name in enumerate(class_names)}

    paths, labels, unreadable = [], [], []
    for path in tqdm(files, desc=f"checking {root}", disable=not (progress and check and len(files) > 500)):
        if check:
            try:
                load_rgb(path, draft_size=64)
            except DatasetError:
                unreadable.append(str(path))
                continue
        paths.append(str(path))
        labels.append(class_ids[path.relative_to(root).parts[0]] if use_labels else 0)
    if unreadable:
        warnings.warn(f"{root}: skipped {len(unreadable)} unreadable image file(s), e.g. {unreadable[0]}", stacklevel=2)
    if not paths:
        raise DatasetError(f"{root}: no readable image found (extensions {', '.join(IMAGE_EXTENSIONS)})")
    return ImageIndex(paths, labels, class_names, unreadable)


def image_transform(resolution: int, train: bool, flip: bool = True) -> transforms.Compose:
    """Short side to `resolution`, then a random (train) or center (eval) crop; [-1, 1] output."""
    steps = [transforms.Resize(resolution, interpolation=transforms.InterpolationMode.BICUBIC, antialias=True)]
    if train:
        steps.append(transforms.RandomCrop(resolution))
        if flip:
            steps.append(transforms.RandomHorizontalFlip())
    else:
        steps.append(transforms.CenterCrop(resolution))
    steps += [transforms.ToTensor(), transforms.Normalize([0.5] * 3, [0.5] * 3)]
    return transforms.Compose(steps)


class ImageFolderDataset(Dataset):
    """Items are dicts: image (3, H, W) float in [-1, 1], label (int), index (int).

    Keys are positions in `subset`, or (epoch, position) pairs from an `EpochSampler`: then
    the random crop and flip are seeded by (seed, epoch, image), the same in any worker and
    after a resume.
    """

    def __init__(self, index: ImageIndex, subset: list[int], resolution: int, train: bool, flip: bool = True,
                 seed: int = 0, derive: str = ""):
        self.index = index
        self.subset = subset
        self.seed = seed
        self.transform = image_transform(resolution, train, flip)
        self.derive = derive  # a condition transform (vqgan/condition_images.py) applied last

    def __len__(self) -> int:
        return len(self.subset)

    def path(self, i: int) -> str:
        return self.index.paths[self.subset[i]]

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        if isinstance(key, tuple):
            epoch, i = key
            j = self.subset[i]
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(item_seed(self.seed, epoch, j))
                image = self.transform(load_rgb(self.index.paths[j]))
        else:
            j = self.subset[key]
            image = self.transform(load_rgb(self.index.paths[j]))
        if self.derive:
            from .condition_images import derive  # that module builds on this one

            image = derive(self.derive, image)
        return {"image": image, "label": self.index.labels[j], "index": j}


def training_sampler(index: ImageIndex, train_ids: list[int], config: DataConfig, seed: int) -> EpochSampler:
    """The training order over `train_ids`: shuffled, or class-balanced with data.balance_classes."""
    weights = class_balanced_weights([index.labels[i] for i in train_ids]) if config.balance_classes else None
    return EpochSampler(len(train_ids), seed, weights=weights)


class ImageDataModule(pl.LightningDataModule):
    """Train/validation loaders over one image folder, split by a fixed seed."""

    def __init__(self, config: DataConfig, seed: int = 0):
        super().__init__()
        self.config = config
        self.seed = seed
        self.batch_size = config.batch_size
        self.index: ImageIndex | None = None
        self.train_set: ImageFolderDataset | None = None
        self.val_set: ImageFolderDataset | None = None
        self.train_sampler: EpochSampler | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.index is not None:
            return
        c = self.config
        self.index = scan_images(c.root, c.use_labels)
        train_ids, val_ids = self.index.split(c.val_fraction, c.split_seed)
        if len(train_ids) < c.batch_size:
            raise DatasetError(f"{c.root}: {len(train_ids)} training images, fewer than data.batch_size={c.batch_size}")
        self.train_set = ImageFolderDataset(self.index, train_ids, c.resolution, train=True, flip=c.flip, seed=self.seed,
                                            derive=c.derive)
        self.val_set = ImageFolderDataset(self.index, val_ids, c.resolution, train=False, derive=c.derive)
        self.train_sampler = training_sampler(self.index, train_ids, c, self.seed)

    @property
    def class_names(self) -> list[str]:
        self.setup()
        return self.index.class_names

    def save_class_names(self, path: str | Path) -> None:
        atomic_write_text(Path(path), json.dumps(self.class_names, indent=1))

    def _loader(self, dataset: Dataset, train: bool) -> DataLoader:
        c = self.config
        return DataLoader(
            dataset,
            batch_size=c.batch_size,
            sampler=self.train_sampler if train else None,
            drop_last=train,
            num_workers=c.num_workers,
            persistent_workers=c.num_workers > 0,
            prefetch_factor=4 if c.num_workers > 0 else None,  # keeps a fast GPU fed between slow batches
            pin_memory=torch.cuda.is_available(),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, train=False)
