"""Export folders: `config.json` (the model's dataclass config) + `model.safetensors`, written
atomically and read strictly. The tokenizer, the GPT and the taming converter all go through
here; nothing in this module needs OmegaConf or Lightning.

    write_export("runs/x/tokenizer", "tokenizer", config, state_dict)
    model = load_export(VQGAN, VQGANConfig, "runs/x/tokenizer", "cuda")
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from .io import atomic_write_dir, export_kind
from .schema import ConfigError, dataclass_from_dict

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
_FLOAT_DTYPES = ("F64", "F32", "F16", "BF16")


def write_export(directory: str | Path, kind: str, config, state: dict[str, torch.Tensor],
                 extra: Callable[[Path], None] | None = None) -> None:
    """Write `config` (a dataclass) and `state` into `directory`, replacing an earlier export of
    the same `kind` as a whole (see `atomic_write_dir`); `extra(tmp_dir)` adds more files."""

    def fill(tmp: Path) -> None:
        (tmp / CONFIG_NAME).write_text(json.dumps(asdict(config), indent=2))
        save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(tmp / WEIGHTS_NAME))
        if extra is not None:
            extra(tmp)

    atomic_write_dir(Path(directory), fill, kind=kind)


def read_export_kind(directory: str | Path) -> str | None:
    """"tokenizer", "gpt", ... as written by `write_export`; None for a folder without a marker."""
    return export_kind(Path(directory))


def read_config(schema, directory: str | Path):
    """Read `directory/config.json` into the dataclass `schema`, with errors that name the file."""
    directory = Path(directory)
    path = directory / CONFIG_NAME
    if not directory.is_dir():
        raise FileNotFoundError(f"model folder not found: {directory}")
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: not an exported model folder")
    try:
        values = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path} is not valid JSON: {err}") from None
    return dataclass_from_dict(schema, values, str(path))


def load_export(model_class, schema, directory: str | Path, device="cpu", skip: tuple[str, ...] = ()) -> nn.Module:
    """`model_class(config)` from `directory/config.json`, built on `device`, weights loaded."""
    directory = Path(directory)
    config = read_config(schema, directory)
    return load_weights(lambda: model_class(config), directory, device, skip)


def load_weights(build: Callable[[], nn.Module], directory: Path, device, skip: tuple[str, ...] = ()) -> nn.Module:
    """`build()` a model on `device` and load `directory/model.safetensors` into it strictly.

    The file's tensor shapes are checked against a skeleton on the "meta" device first, so a
    config.json that asks for a huge model fails before any memory is allocated. Weights of a
    lower precision (fp16 / bf16 exports) load into the model's fp32 parameters. Keys matching
    `skip` (training-time state an export leaves out) keep their initial values."""
    path = directory / WEIGHTS_NAME
    with torch.device("meta"):
        skeleton = build()
    check_weights_file(skeleton, directory, skip)
    device = torch.device(device)
    with torch.device(device):
        model = build()
    if device.type == "meta":  # the architecture only: no weights to read
        return model
    state = load_file(str(path), device=str(device))
    nonfinite = sorted(k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all())
    if nonfinite:
        raise ValueError(f"{path} holds NaN or infinite values in {nonfinite[:3]}: not a usable export")
    model.load_state_dict(state, strict=False)  # strict on the checked keys; `skip` ones stay
    return model


def check_weights_file(model: nn.Module, directory: Path, skip: tuple[str, ...] = ()) -> None:
    """Every key of `model` (less `skip`) present in `directory/model.safetensors` with the same
    shape and a floating dtype where the model has one; read from the header alone."""
    path = directory / WEIGHTS_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing")
    try:
        with safe_open(str(path), framework="pt") as f:
            shapes = {k: (tuple(f.get_slice(k).get_shape()), f.get_slice(k).get_dtype()) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"{path} is not a readable safetensors file: {err}") from None
    expected = {k: v for k, v in model.state_dict().items() if not any(s in k for s in skip)}
    missing = sorted(set(expected) - set(shapes))
    unexpected = sorted(set(shapes) - set(expected))
    wrong = sorted(k for k in set(shapes) & set(expected) if shapes[k][0] != tuple(expected[k].shape))
    not_float = sorted(k for k in set(shapes) & set(expected)
                       if expected[k].is_floating_point() and shapes[k][1] not in _FLOAT_DTYPES)
    if missing or unexpected or wrong or not_float:
        details = []
        if missing:
            details.append(f"missing {missing[:3]}")
        if unexpected:
            details.append(f"unexpected {unexpected[:3]}")
        if wrong:
            k = wrong[0]
            details.append(f"shape of '{k}' is {shapes[k][0]}, config.json implies {tuple(expected[k].shape)}")
        if not_float:
            details.append(f"'{not_float[0]}' is {shapes[not_float[0]][1]}, not a floating-point tensor")
        raise ValueError(f"{path} does not match {directory / CONFIG_NAME}: " + "; ".join(details))
