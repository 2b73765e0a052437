"""Evaluation of a tokenizer (and optionally a GPT) on an image folder's validation split."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from vqgan import fid as fid_lib
from vqgan.condition_images import derive, silhouette_iou
from vqgan.data import DataConfig, ImageFolderDataset, ImageIndex, scan_images
from vqgan.io import atomic_write_text
from vqgan.metrics import reconstruction_metrics
from vqgan.model import VQGAN
from vqgan.perceptual import LPIPS, PerceptualConfig

from .fid_floors import OTHER_SPLIT, class_costs, fid_floors
from .metrics import balanced_labels, code_bits, image_features
from .eval_config import EvalConfig
from .model import GPT
from .sampling import sample_images


@dataclass
class Evaluation:
    metrics: dict
    reals: torch.Tensor  # (N, 3, H, W) the first evaluation images
    reconstructions: torch.Tensor  # their reconstructions
    samples: torch.Tensor | None  # (num_samples, 3, H, W) generated images
    sample_labels: torch.Tensor | None
    conditions: torch.Tensor | None = None  # (num_samples, 3, H, W): the condition of each sample


def evaluation_set(data: DataConfig, split: str, num_real: int = 0,
                   index: ImageIndex | None = None) -> ImageFolderDataset:
    """The `split` images of `data` ("val", "train" or "all"); `num_real` > 0 keeps that many,
    drawn with a fixed seed, so that FIDs against splits of different sizes compare. `index`:
    the folder already scanned (a scan reads every file)."""
    index = index or scan_images(data.root, data.use_labels)
    train_ids, val_ids = index.split(data.val_fraction, data.split_seed)
    ids = {"val": val_ids, "train": train_ids}.get(split, list(range(len(index.paths))))
    if 0 < num_real < len(ids):
        keep = torch.randperm(len(ids), generator=torch.Generator().manual_seed(0))[:num_real]
        ids = [ids[i] for i in keep.sort().values.tolist()]
    if len(ids) < 2:
        raise ValueError(f"{data.root}: the '{split}' split has {len(ids)} images; FID needs at least 2")
    return ImageFolderDataset(index, ids, data.resolution, train=False)


def fid_metric(config: EvalConfig) -> fid_lib.FID | None:
    """The FID metric that `config.fid_weights` names, or None for "off"."""
    return None if config.fid_weights == "off" else fid_lib.frechet_inception_distance(config.fid_weights)


def evaluate(tokenizer: VQGAN, data: DataConfig, config: EvalConfig, gpt: GPT | None = None,
             keep_images: int = 32, fid: fid_lib.FID | None = None,
             condition_tokenizer: VQGAN | None = None) -> Evaluation:
    """Reconstruction metrics of `tokenizer` and, given a `gpt`, gFID of its samples, against
    the same real images (the `config.split` split of `data`). `fid`: a `fid_metric(config)`
    already loaded (it holds no real features yet), instead of loading the network again.
    An image-conditional `gpt` (with its `condition_tokenizer`) samples one image per
    evaluation image's condition (cycling if num_samples is larger); with silhouette conditions
    the mean IoU between each sample's silhouette and its condition is measured too.
    `config.floors`: the FID floors of transformer/fid_floors.py too, and for a class-conditional
    `gpt` the gFID with each class's samples replaced by real ones (`class_costs`). A class- or unconditional
    `gpt`'s bits per code on the images' codes are measured too (`code_bits`)."""
    dataset = evaluation_set(data, config.split, config.num_real)
    device = tokenizer.device  # every network runs where the tokenizer is
    lpips = LPIPS(PerceptualConfig(net=config.lpips_net, weights=config.lpips_weights)).to(device)
    if fid is None:
        fid = fid_metric(config)
    if fid is not None:
        fid = fid.to(device)
    metrics = {"split": config.split, "data_root": data.root, "resolution": data.resolution,
               "lpips_net": config.lpips_net, "fid_preprocessing": fid_lib.PREPROCESSING}
    metrics.update(reconstruction_metrics(tokenizer, dataset, lpips, fid, config.batch_size))
    if fid is not None:
        metrics["rfid_counts"] = {"real": len(dataset), "reconstructed": len(dataset)}
    floors = None
    if config.floors and fid is not None:
        num_classes = gpt.config.num_classes if gpt is not None else 0
        pool = evaluation_set(data, OTHER_SPLIT[config.split], index=dataset.index)  # no second scan
        floors = fid_floors(tokenizer, pool, config.num_samples, num_classes, fid, config.batch_size)
        metrics.update(floors.metrics)
    reals = torch.stack([dataset[i]["image"] for i in range(min(keep_images, len(dataset)))])
    reconstructions = tokenizer.reconstruct(reals.to(device)).cpu()

    if gpt is not None and not gpt.config.image_conditional:
        metrics.update(code_bits(gpt, tokenizer, dataset, config.batch_size, config.seed))
    samples = labels = conditions = None
    if gpt is not None and config.num_samples > 0:
        options = config.generate_options(gpt.config)
        labels = balanced_labels(config.num_samples, gpt.config.num_classes) if gpt.config.num_classes else None
        if gpt.config.image_conditional:
            if condition_tokenizer is None:
                raise ValueError("an image-conditional model needs its condition_tokenizer to be evaluated")
            ids = [i % len(dataset) for i in range(config.num_samples)]
            conditions = torch.stack([dataset[i]["image"] for i in ids])  # (N, 3, H, W)
            if gpt.config.condition_derive:
                conditions = derive(gpt.config.condition_derive, conditions)
            labels = torch.cat([condition_tokenizer.encode(chunk.to(device)).cpu()
                                for chunk in conditions.split(config.batch_size)])  # (N, h, w) condition codes
        samples = sample_images(gpt, tokenizer, labels, config.num_samples, config.batch_size, seed=config.seed,
                                progress=True, **options)
        if conditions is not None and gpt.config.condition_derive == "silhouette":
            metrics["silhouette_iou"] = silhouette_iou(samples, conditions).mean().item()
            # chance level: each condition against another, shuffled (a model that ignored it)
            shuffled = conditions[torch.randperm(len(conditions), generator=torch.Generator().manual_seed(0))]
            metrics["silhouette_iou_shuffled"] = silhouette_iou(shuffled, conditions).mean().item()
        class_conditional = labels is not None and conditions is None
        names = gpt.config.class_names_or_numbers
        if fid is not None:
            features = image_features(fid, samples, config.batch_size)  # (N, F)
            metrics["gfid"] = fid.fid_of_features(features)
            metrics["gfid_counts"] = {"real": len(dataset), "generated": samples.shape[0]}
            if floors is not None and class_conditional:
                metrics["gfid_class_replaced"] = class_costs(fid, features, labels, floors, names)
        if class_conditional:
            metrics["gfid_samples_per_class"] = {names[c]: int((labels == c).sum()) for c in range(len(names))}
        metrics["sampling"] = {"cfg_scale": options["cfg_scale"], "top_k": options["top_k"], "top_p": config.top_p,
                               "temperature": config.temperature, "seed": config.seed,
                               **{k: options[k] for k in ("steps", "choice_temperature") if k in options}}
    return Evaluation(metrics, reals, reconstructions, samples, labels, conditions)


def format_table(metrics: dict) -> str:
    """The headline numbers as an aligned two-column table (with the floors' per-class gFIDs)."""
    rows = [(k, metrics[k]) for k in ("psnr", "ssim", "lpips", "rfid", "codebook_usage", "perplexity", "gfid",
                                      "bits_per_code", "fid_floor_real", "fid_floor_reconstructed", "silhouette_iou")
            if k in metrics]
    rows += [(f"gfid with real {name}", value) for name, value in metrics.get("gfid_class_replaced", {}).items()]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v:.4g}" for k, v in rows)


def write_metrics(metrics: dict, path: str | Path, config: EvalConfig | None = None) -> None:
    if config is not None:
        metrics = {**metrics, "eval_config": asdict(config)}
    atomic_write_text(Path(path), json.dumps(metrics, indent=2))
