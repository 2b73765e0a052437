"""LPIPS perceptual distance from the `lpips` package, with explicit backbone weights.

The backbone (torchvision's ImageNet VGG16 or AlexNet `features`) resolves in this order:
1. `weights` in the config: a `.safetensors` file, or a folder holding `vgg16.safetensors`
   / `alexnet.safetensors` (what `scripts/prepare_lpips_weights.py` writes);
2. the environment variable `VQGAN_LPIPS_WEIGHTS` (same forms);
3. `weights: torchvision`: torchvision's normal download (needs internet once).
`weights: random` gives an untrained backbone, for tests only. Anything else is an error
that says how to get the weights; there is no silent fallback.
The LPIPS linear layers (v0.1) ship inside the `lpips` package itself.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

ENV_VAR = "VQGAN_LPIPS_WEIGHTS"
BACKBONES = {"vgg": "vgg16", "alex": "alexnet"}
HOW_TO_GET = (
    "run `python scripts/prepare_lpips_weights.py` (writes weights/lpips/), then set "
    f"loss.perceptual.weights=weights/lpips or {ENV_VAR}=weights/lpips; "
    "or set loss.perceptual.weights=torchvision to download them"
)


@dataclass
class PerceptualConfig:
    net: str = "vgg"  # "vgg" or "alex"
    weights: str = ""  # path, "torchvision" or "random"; "" reads $VQGAN_LPIPS_WEIGHTS
    resize: int = 0  # compare images upsampled to this side (0: as they are)

    def __post_init__(self):
        if self.net not in BACKBONES:
            raise ValueError(f"'loss.perceptual.net' must be one of {tuple(BACKBONES)}, got '{self.net}'")
        if self.resize < 0:
            raise ValueError("'loss.perceptual.resize' must be >= 0")


class LPIPSWeightsError(FileNotFoundError):
    """No usable backbone weights for LPIPS."""


def resolve_backbone_weights(net: str, weights: str) -> str | Path:
    """-> a safetensors path, "torchvision" or "random"; raises with instructions otherwise."""
    source = weights or os.environ.get(ENV_VAR, "")
    if source in ("torchvision", "random"):
        return source
    if not source:
        raise LPIPSWeightsError(f"no LPIPS backbone weights configured: {HOW_TO_GET}")
    path = Path(source)
    if path.is_dir():
        path = path / f"{BACKBONES[net]}.safetensors"
    if not path.is_file():
        origin = "config" if weights else ENV_VAR
        raise LPIPSWeightsError(f"LPIPS backbone weights not found at {path} (from {origin}): {HOW_TO_GET}")
    return path


def _torchvision_features(net: str) -> dict[str, torch.Tensor]:
    from torchvision import models

    if net == "vgg":
        return models.vgg16(weights=models.VGG16_Weights.IMAGENET1K_V1).features.state_dict()
    return models.alexnet(weights=models.AlexNet_Weights.IMAGENET1K_V1).features.state_dict()


class LPIPS(nn.Module):
    """Frozen LPIPS; `forward(x, y)` on images in [-1, 1] returns (B,) distances."""

    def __init__(self, config: PerceptualConfig):
        super().__init__()
        import lpips  # heavy import, only where LPIPS is used

        source = resolve_backbone_weights(config.net, config.weights)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # lpips calls torchvision with deprecated arguments
            self.model = lpips.LPIPS(net=config.net, pnet_rand=True, verbose=False)
        if source == "random":
            warnings.warn("LPIPS with a random backbone (loss.perceptual.weights=random): for tests only", stacklevel=2)
        else:
            features = _torchvision_features(config.net) if source == "torchvision" else load_file(str(source))
            self._load_features(features, str(source))
        self.resize = config.resize
        self.requires_grad_(False)
        self.eval()

    def _load_features(self, features: dict[str, torch.Tensor], source: str) -> None:
        # lpips splits torchvision's `features` into slices but keeps each layer's index as its name
        backbone = self.model.net
        own = {key.split(".", 1)[1]: key for key in backbone.state_dict()}  # "0.weight" -> "slice1.0.weight"
        missing = sorted(set(own) - set(features))
        if missing:
            raise LPIPSWeightsError(f"{source} lacks backbone tensors {missing[:4]}: {HOW_TO_GET}")
        backbone.load_state_dict({own[k]: features[k] for k in own})

    def train(self, mode: bool = True) -> "LPIPS":
        return super().train(False)  # always in eval mode (no dropout)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.resize and x.shape[-1] != self.resize:
            x = F.interpolate(x, size=self.resize, mode="bilinear", align_corners=False)
            y = F.interpolate(y, size=self.resize, mode="bilinear", align_corners=False)
        return self.model(x, y).flatten()
