"""PatchGAN discriminator (pix2pix's NLayerDiscriminator), and its receptive field."""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import nn

NORMS = ("batch", "group", "none")


@dataclass
class DiscriminatorConfig:
    n_layers: int = 3
    ndf: int = 64  # width of the first layer
    norm: str = "batch"  # one of NORMS

    def __post_init__(self):
        if self.n_layers < 1:
            raise ValueError("'loss.discriminator.n_layers' must be at least 1")
        if self.ndf < 1:
            raise ValueError("'loss.discriminator.ndf' must be positive")
        if self.norm not in NORMS:
            raise ValueError(f"'loss.discriminator.norm' must be one of {NORMS}, got '{self.norm}'")


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(min(32, channels), channels)
    return nn.Identity()


class PatchDiscriminator(nn.Module):
    """(B, 3, H, W) -> (B, 1, h, w) real/fake logits, one per overlapping patch."""

    def __init__(self, config: DiscriminatorConfig, in_channels: int = 3):
        super().__init__()
        ndf, use_bias = config.ndf, config.norm != "batch"
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        mult = 1
        for n in range(1, config.n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < config.n_layers else 1  # the last hidden layer keeps the size
            layers += [
                nn.Conv2d(ndf * prev, ndf * mult, 4, stride=stride, padding=1, bias=use_bias),
                _norm(config.norm, ndf * mult),
                nn.LeakyReLU(0.2),
            ]
        layers.append(nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1))
        self.main = nn.Sequential(*layers)
        self.apply(_init_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x)

    def convs(self) -> list[nn.Conv2d]:
        return [m for m in self.main if isinstance(m, nn.Conv2d)]

    def receptive_field(self) -> int:
        """Side of the input patch each output logit sees: r <- r * stride + (kernel - stride)."""
        field = 1
        for conv in reversed(self.convs()):
            field = field * conv.stride[0] + (conv.kernel_size[0] - conv.stride[0])
        return field

    def output_size(self, image_size: int) -> int:
        side = image_size
        for conv in self.convs():
            side = (side + 2 * conv.padding[0] - conv.kernel_size[0]) // conv.stride[0] + 1
        return side

    def check_image_size(self, image_size: int) -> str:
        """A one-line summary; warns when the patches are too large for the images."""
        field, out = self.receptive_field(), self.output_size(image_size)
        message = f"PatchGAN: receptive field {field} px, output map {out}x{out} on {image_size} px images"
        if field > image_size or out < 2:
            warnings.warn(message + ": each patch sees (nearly) the whole image; consider fewer layers", stacklevel=2)
        return message


def _init_weights(module: nn.Module) -> None:
    """pix2pix's initialisation: N(0, 0.02) convs, N(1, 0.02) norm scales."""
    if isinstance(module, nn.Conv2d):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm2d, nn.GroupNorm)):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)
