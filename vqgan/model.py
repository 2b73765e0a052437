"""The VQGAN tokenizer: image -> grid of integer codes -> image.

    from vqgan import VQGAN
    tok = VQGAN.from_pretrained("runs/emoji32/tokenizer")
    idx = tok.encode(x)        # (B, 3, H, W) in [-1, 1] -> (B, h, w) int64
    x_hat = tok.decode(idx)    # -> (B, 3, H, W), same scale as x (not clamped)
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .export import load_export, write_export
from .modules import Decoder, Encoder
from .quantize import QuantizerConfig, QuantizerOutput, build_quantizer
from .schema import require

# Training-time state that a tokenizer export leaves out.
_NOT_EXPORTED = (".usage.", ".train_state.")
# The parts that decide an image's codes (the decoder only reads them).
CODE_MODULES = ("encoder", "quant_conv", "quantize")


@dataclass
class VQGANConfig:
    """Architecture of the tokenizer (the knobs of taming-transformers' `ddconfig`)."""

    resolution: int = 32  # training image side; the network itself is fully convolutional
    in_channels: int = 3
    out_ch: int = 3
    ch: int = 64  # base width; level i has ch * ch_mult[i] channels
    ch_mult: list[int] = field(default_factory=lambda: [1, 2, 2])  # one entry per level
    num_res_blocks: int = 2
    attn_resolutions: list[int] = field(default_factory=list)  # feature-map sides with attention
    z_channels: int = 64  # encoder output channels
    embed_dim: int = 8  # code dimension (quant_conv projects z_channels -> embed_dim)
    dropout: float = 0.0
    norm_groups: int = 32  # GroupNorm groups (taming: 32)
    quantizer: QuantizerConfig = field(default_factory=QuantizerConfig)

    def __post_init__(self):
        for key in ("resolution", "in_channels", "out_ch", "ch", "num_res_blocks", "z_channels", "embed_dim", "norm_groups"):
            require(getattr(self, key) > 0, f"model.{key}", "must be positive")
        require(len(self.ch_mult) > 0 and min(self.ch_mult) > 0, "model.ch_mult", "must be a non-empty list of positive ints")
        require(0.0 <= self.dropout < 1.0, "model.dropout", "must be in [0, 1)")
        factor = 2 ** (len(self.ch_mult) - 1)
        require(
            self.resolution % factor == 0, "model.ch_mult",
            f"has {len(self.ch_mult)} levels (downsampling x{factor}), which does not divide model.resolution={self.resolution}",
        )
        for mult in self.ch_mult:
            require(
                self.ch * mult % self.norm_groups == 0, "model.ch",
                f"times each ch_mult entry must be divisible by model.norm_groups={self.norm_groups} (got {self.ch}*{mult})",
            )
        if self.quantizer.kind == "fsq":
            require(self.embed_dim == len(self.quantizer.fsq_levels), "model.embed_dim",
                    f"must equal len(model.quantizer.fsq_levels) = {len(self.quantizer.fsq_levels)} for fsq")
        sides = {self.resolution // 2**i for i in range(len(self.ch_mult))}
        unused = sorted(set(self.attn_resolutions) - sides)
        require(not unused, "model.attn_resolutions", f"lists sides {unused} that never occur (feature-map sides: {sorted(sides)})")

    @property
    def downsample_factor(self) -> int:
        return 2 ** (len(self.ch_mult) - 1)

    @property
    def grid_size(self) -> int:
        """Side of the code grid for `resolution`-pixel images."""
        return self.resolution // self.downsample_factor


@dataclass
class VQGANOutput:
    reconstruction: torch.Tensor  # (B, 3, H, W)
    quantizer: QuantizerOutput


class VQGAN(nn.Module):
    """Encoder -> quant_conv -> quantizer -> post_quant_conv -> decoder."""

    def __init__(self, config: VQGANConfig):
        super().__init__()
        self.config = config
        arch = dict(ch=config.ch, ch_mult=list(config.ch_mult), num_res_blocks=config.num_res_blocks,
                    attn_resolutions=list(config.attn_resolutions), z_channels=config.z_channels,
                    resolution=config.resolution, dropout=config.dropout, norm_groups=config.norm_groups)
        self.encoder = Encoder(in_channels=config.in_channels, **arch)
        self.decoder = Decoder(out_ch=config.out_ch, **arch)
        self.quant_conv = nn.Conv2d(config.z_channels, config.embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(config.embed_dim, config.z_channels, 1)
        self.quantize = build_quantizer(config.quantizer, config.embed_dim)

    @property
    def codebook_size(self) -> int:
        return self.quantize.codebook_size

    @property
    def last_layer(self) -> torch.Tensor:
        """The decoder's output weight, where the adversarial weight is balanced."""
        return self.decoder.conv_out.weight

    # --- training path -------------------------------------------------------------

    def encode_latent(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> pre-quantization latent (B, embed_dim, h, w)."""
        return self.quant_conv(self.encoder(x))

    def decode_latent(self, z_q: torch.Tensor) -> torch.Tensor:
        """Quantized latent (B, embed_dim, h, w) -> image (B, 3, H, W)."""
        return self.decoder(self.post_quant_conv(z_q))

    def forward(self, x: torch.Tensor) -> VQGANOutput:
        q = self.quantize(self.encode_latent(x))
        return VQGANOutput(self.decode_latent(q.z_q), q)

    # --- inference helpers -----------------------------------------------------------

    @contextmanager
    def _inference(self):
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                yield
        finally:
            self.train(was_training)

    def _as_model_input(self, x: torch.Tensor) -> torch.Tensor:
        """Accept what users have at hand: uint8 images in [0, 255], one unbatched (3, H, W)
        image, any float dtype or device; -> (B, 3, H, W) on the model's device and dtype."""
        if x.dim() == 3:
            x = x.unsqueeze(0)
        if x.dim() != 4 or x.shape[1] != self.config.in_channels:
            raise ValueError(f"expected images (B, {self.config.in_channels}, H, W), got shape {tuple(x.shape)}")
        f = self.config.downsample_factor
        if x.shape[2] % f or x.shape[3] % f:
            raise ValueError(f"image sides must be multiples of {f} (the tokenizer downsamples by {f}), "
                             f"got {x.shape[2]}x{x.shape[3]}")
        if x.dtype == torch.uint8:
            x = x.float() / 127.5 - 1
        elif not x.is_floating_point():
            raise TypeError(f"expected float images in [-1, 1] or uint8 in [0, 255], got {x.dtype}")
        elif x.numel() and x.abs().max() > 10:  # the [0, 255] mistake; noise and resampling overshoot stay allowed
            raise ValueError(f"float images must lie in [-1, 1] (uint8: [0, 255]); these reach "
                             f"{x.abs().max().item():.3g} - were they scaled to [0, 255]?")
        return x.to(self.device, self.dtype)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, 3, H, W) in [-1, 1] (or uint8 in [0, 255], or one (3, H, W) image) ->
        codes (B, H/f, W/f) int64."""
        with self._inference():
            return self.quantize(self.encode_latent(self._as_model_input(x))).indices

    def decode(self, indices: torch.Tensor) -> torch.Tensor:
        """Codes (B, h, w) int64 -> images (B, 3, h*f, w*f) on the [-1, 1] scale, not clamped.
        Flat codes (B, grid_size**2), as `transformer.generate` returns them, are accepted too."""
        if indices.dtype not in (torch.int32, torch.int64):
            raise TypeError(f"decode expects integer codes, got {indices.dtype}")
        side = self.config.grid_size
        if indices.dim() == 2 and indices.shape[1] == side * side:
            indices = indices.view(-1, side, side)
        if indices.dim() != 3:
            raise ValueError(f"decode expects codes (B, h, w) or (B, {side * side}), got shape {tuple(indices.shape)}")
        if indices.numel() and (indices.min() < 0 or indices.max() >= self.codebook_size):
            raise ValueError(f"codes must lie in [0, {self.codebook_size}), got [{indices.min()}, {indices.max()}]")
        with self._inference():
            return self.decode_latent(self.quantize.lookup(indices.long().to(self.device)).to(self.dtype))

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Encode and decode in one go (eval mode, no gradients)."""
        with self._inference():
            return self(self._as_model_input(x)).reconstruction

    # --- export ------------------------------------------------------------------

    def export_state_dict(self) -> dict[str, torch.Tensor]:
        """Weights of the tokenizer alone (no training-time statistics)."""
        return {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()
                if not any(s in k for s in _NOT_EXPORTED)}

    def code_weights(self) -> dict[str, torch.Tensor]:
        """The exported weights that decide the codes (encoder, quant_conv, codebook): two
        tokenizers with equal code weights give every image the same codes."""
        return {k: v for k, v in self.export_state_dict().items() if k.split(".")[0] in CODE_MODULES}

    def save_pretrained(self, directory: str | Path) -> None:
        """Export to `directory` (config.json + model.safetensors), replacing it atomically."""
        write_export(directory, "tokenizer", self.config, self.export_state_dict())

    @classmethod
    def from_pretrained(cls, directory: str | Path, map_location: str | torch.device = "cpu") -> "VQGAN":
        """Load an exported tokenizer, in eval mode, built directly on `map_location` ("cuda",
        "cpu", or "meta" for the architecture alone). Errors name the bad file."""
        return load_export(cls, VQGANConfig, directory, map_location, skip=_NOT_EXPORTED).eval()

    @property
    def device(self) -> torch.device:
        return self.decoder.conv_out.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.decoder.conv_out.weight.dtype
