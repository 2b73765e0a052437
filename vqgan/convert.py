"""Import taming-transformers stage-1 checkpoints (VQModel and GumbelVQ) as tokenizer folders.

Our modules carry taming's names, so the mapping is one to one: every model tensor of the
checkpoint must land on a tensor of the same name and shape here, and every tensor here
must come from the checkpoint. The training loss (`loss.*`: LPIPS and discriminator) is
dropped; anything else unknown is refused by name.
"""
from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from .config import read_yaml
from .io import check_export_target
from .model import _NOT_EXPORTED, VQGAN, VQGANConfig
from .quantize import QuantizerConfig

TARGETS = {"taming.models.vqgan.VQModel": "classic", "taming.models.vqgan.GumbelVQ": "gumbel"}


class ConversionError(ValueError):
    """A taming checkpoint or config this converter cannot map exactly."""


def config_from_taming(taming_config: dict, source: str = "config") -> VQGANConfig:
    """taming's `model: {target, params: {ddconfig, n_embed, embed_dim, ...}}` -> VQGANConfig."""
    try:
        return _config_from_taming(taming_config, source)
    except (KeyError, TypeError, AttributeError) as err:  # a key missing or of the wrong type
        raise ConversionError(f"{source}: not a taming VQGAN config this converter can read "
                              f"({type(err).__name__}: {err})") from None


def _config_from_taming(taming_config: dict, source: str) -> VQGANConfig:
    try:
        model = taming_config["model"]
        target, params = model["target"], model["params"]
        dd = params["ddconfig"]
    except (KeyError, TypeError) as err:
        raise ConversionError(f"{source}: not a taming model config (missing {err})") from None
    if target not in TARGETS:
        raise ConversionError(f"{source}: model.target '{target}' is not one of {sorted(TARGETS)}")
    if dd.get("double_z", False):
        raise ConversionError(f"{source}: ddconfig.double_z=true is a KL autoencoder, not a VQGAN")
    kind = TARGETS[target]
    quantizer = dict(kind=kind, codebook_size=params["n_embed"], beta=0.25)
    if kind == "gumbel":
        if params["embed_dim"] != dd["z_channels"]:
            raise ConversionError(f"{source}: GumbelVQ needs embed_dim == z_channels "
                                  f"(got {params['embed_dim']} and {dd['z_channels']}); taming cannot run it either")
        quantizer["kl_weight"] = params.get("kl_weight", 5e-4)
        schedule = params.get("temperature_scheduler_config", {}).get("params", {})
        if schedule:
            quantizer.update(tau_start=schedule["lr_max"], tau_end=schedule["lr_min"],
                             tau_steps=schedule["max_decay_steps"])
    return VQGANConfig(
        resolution=dd["resolution"], in_channels=dd["in_channels"], out_ch=dd["out_ch"], ch=dd["ch"],
        ch_mult=list(dd["ch_mult"]), num_res_blocks=dd["num_res_blocks"],
        attn_resolutions=list(dd["attn_resolutions"]), z_channels=dd["z_channels"], embed_dim=params["embed_dim"],
        dropout=dd.get("dropout", 0.0), norm_groups=32, quantizer=QuantizerConfig(**quantizer),
    )


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A Lightning .ckpt (its `state_dict`, loaded with weights_only=True) or a .safetensors file."""
    path = Path(path)
    if path.suffix == ".safetensors":
        try:
            return load_file(str(path))
        except (SafetensorError, OSError) as err:
            raise ConversionError(f"{path}: not a readable safetensors file: {err}") from None
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure is a refusal
        raise ConversionError(f"{path}: cannot be loaded safely (weights_only=True): {str(err).splitlines()[0]}") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ConversionError(f"{path}: no 'state_dict' in the checkpoint")
    return checkpoint["state_dict"]


def convert_state_dict(state: dict[str, torch.Tensor], model: VQGAN, source: str) -> dict[str, torch.Tensor]:
    """Drop `loss.*`, then require a one-to-one, same-shape match with `model`'s tensors."""
    weights = {k: v for k, v in state.items() if not k.startswith("loss.")}
    expected = {k: v for k, v in model.state_dict().items() if not any(s in k for s in _NOT_EXPORTED)}
    unknown = sorted(set(weights) - set(expected))
    if unknown:
        raise ConversionError(f"{source}: unknown key(s) {unknown[:5]} (not part of a taming VQGAN of this config)")
    missing = sorted(set(expected) - set(weights))
    if missing:
        raise ConversionError(f"{source}: missing key(s) {missing[:5]}")
    for key, value in weights.items():
        if value.shape != expected[key].shape:
            raise ConversionError(f"{source}: '{key}' has shape {tuple(value.shape)}, the config implies "
                                  f"{tuple(expected[key].shape)}")
    return {k: v.float() for k, v in weights.items()}


def convert_taming(checkpoint: str | Path, config: str | Path, out_dir: str | Path | None = None) -> VQGAN:
    """Build the tokenizer of a taming checkpoint + config; save it to `out_dir` if given."""
    if out_dir is not None:
        check_export_target(Path(out_dir), "tokenizer")
    vq_config = config_from_taming(read_yaml(config), str(config))
    model = VQGAN(vq_config)
    weights = convert_state_dict(read_state_dict(checkpoint), model, str(checkpoint))
    model.load_state_dict(weights, strict=False)  # strict on the exported keys, checked above
    model.eval()
    if out_dir is not None:
        model.save_pretrained(out_dir)
    return model
