"""Reconstruction quality of a tokenizer on a set of images: PSNR, SSIM, LPIPS, rFID,
codebook usage and perplexity, in one pass with a progress bar."""
from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure
from tqdm.auto import tqdm

from .images import to_uint8
from .model import VQGAN
from .perceptual import LPIPS
from .quantize import perplexity

PSNR_CAP_DB = 100.0  # identical images have infinite PSNR; each image's value is capped here


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1], clamped: metrics see what a saved PNG would show."""
    return ((x.float() + 1) / 2).clamp(0, 1)


def image_quality(x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-image PSNR (dB, capped) and SSIM of y against x, both (B, 3, H, W) in [-1, 1]."""
    a, b = to_unit(x), to_unit(y)
    psnr = peak_signal_noise_ratio(b, a, data_range=1.0, reduction="none", dim=(1, 2, 3)).clamp(max=PSNR_CAP_DB)
    ssim = structural_similarity_index_measure(b, a, data_range=1.0, reduction="none")
    return {"psnr": psnr, "ssim": ssim}


@torch.no_grad()
def reconstruction_metrics(tokenizer: VQGAN, dataset: Dataset, lpips: LPIPS | None, fid=None,
                           batch_size: int = 64, progress: bool = True) -> dict:
    """Mean PSNR / SSIM / LPIPS over `dataset` (items with an "image"), rFID if `fid` is given
    (its real features are the dataset's), and codebook usage over all the codes."""
    device = tokenizer.device
    sums = {"psnr": 0.0, "ssim": 0.0, "lpips": 0.0}
    counts = torch.zeros(tokenizer.codebook_size, device=device)
    n = 0
    loader = DataLoader(dataset, batch_size=batch_size)
    for batch in tqdm(loader, desc="reconstructing", unit="batch", disable=not progress):
        x = batch["image"].to(device)
        codes = tokenizer.encode(x)
        x_hat = tokenizer.decode(codes)
        counts += torch.bincount(codes.flatten(), minlength=tokenizer.codebook_size)
        for name, values in image_quality(x, x_hat).items():
            sums[name] += values.sum().item()
        if lpips is not None:
            sums["lpips"] += lpips(x, x_hat.clamp(-1, 1)).sum().item()
        if fid is not None:
            fid.update(to_uint8(x), real=True)
            fid.update(to_uint8(x_hat), real=False)
        n += x.shape[0]
    result = {"num_images": n, "psnr": sums["psnr"] / n, "ssim": sums["ssim"] / n,
              "codebook_usage": (counts > 0).float().mean().item(), "perplexity": perplexity(counts).item(),
              "codebook_size": tokenizer.codebook_size}
    if lpips is not None:
        result["lpips"] = sums["lpips"] / n
    if fid is not None:
        result["rfid"] = fid.compute().item()
    return result
