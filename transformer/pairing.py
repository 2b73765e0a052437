"""Fitting a stage-2 config to what it is trained on: the tokenizer gives vocab_size and
grid_size, the class folders num_classes, a conditioning tokenizer the condition's sizes. A
given value that disagrees is refused in one line, before any tokenizing."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from vqgan.model import VQGAN

from .model import GPTConfig


class TokenizerMismatchError(ValueError):
    """A GPT config that does not fit the tokenizer it is paired with."""


def check_pairing(config: GPTConfig, tokenizer: VQGAN, tokenizer_dir: str | Path) -> None:
    """The GPT's vocabulary and grid must be the tokenizer's codebook and code grid."""
    codebook, grid = tokenizer.codebook_size, tokenizer.config.grid_size
    if config.vocab_size != codebook or config.grid_size != grid:
        raise TokenizerMismatchError(
            f"GPT (vocab_size={config.vocab_size}, grid_size={config.grid_size}) does not match the tokenizer "
            f"{tokenizer_dir} (codebook_size={codebook}, grid {grid}x{grid}); set model.vocab_size={codebook} "
            f"model.grid_size={grid}"
        )


def resolve_model_config(model: GPTConfig, codebook_size: int, grid_size: int, class_names: list[str],
                         tokenizer_dir: str | Path, data_root: str | Path) -> GPTConfig:
    """`model` with vocab_size / grid_size taken from the tokenizer and num_classes / class_names
    from the data folder's class folders where they are unset (0 / -1). A given value that
    disagrees is refused in one line, before any tokenizing. num_classes=0 (unconditional) is
    always allowed."""
    updates = {}
    for key, given, actual in (("vocab_size", model.vocab_size, codebook_size), ("grid_size", model.grid_size, grid_size)):
        if given == 0:
            updates[key] = actual
        elif given != actual:
            raise TokenizerMismatchError(
                f"model.{key}={given} but the tokenizer {tokenizer_dir} has {key.replace('vocab_size', 'codebook_size')}="
                f"{actual}; leave model.{key} out (it is read from the tokenizer) or set model.{key}={actual}")
    num_classes = len(class_names) if model.num_classes == -1 else model.num_classes
    if num_classes and num_classes != len(class_names):
        raise ValueError(f"model.num_classes={num_classes} but {data_root} has {len(class_names)} class folders; "
                         f"leave model.num_classes out (it is counted from the folders) or set 0 for unconditional")
    updates["num_classes"] = num_classes
    if num_classes and not model.class_names:
        updates["class_names"] = list(class_names)
    return dataclasses.replace(model, **updates)


def resolve_condition(model: GPTConfig, source: str, cond_tokenizer: VQGAN | None, cond_tokenizer_dir: str | Path,
                      derive: str, resolution: int) -> GPTConfig:
    """`model` fitted to the condition source: none and image take no classes; image takes its
    sizes from the conditioning tokenizer (a given model.cond_* that disagrees is refused)."""
    if source == "class":
        if model.cond_vocab_size:
            raise ValueError("model.cond_vocab_size is set but condition.source=class; set condition.source=image")
        return model
    if model.num_classes > 0:
        raise ValueError(f"condition.source={source} takes no classes: leave model.num_classes out or set it to 0")
    if source == "none":
        return dataclasses.replace(model, num_classes=0)
    codebook, grid = cond_tokenizer.codebook_size, cond_tokenizer.config.grid_size
    for key, given, actual in (("cond_vocab_size", model.cond_vocab_size, codebook),
                               ("cond_grid_size", model.cond_grid_size, grid)):
        if given and given != actual:
            raise TokenizerMismatchError(
                f"model.{key}={given} but the conditioning tokenizer {cond_tokenizer_dir} gives {actual} "
                f"({grid}x{grid} codes of {codebook}); leave model.{key} out")
    if cond_tokenizer.config.resolution != resolution:
        raise TokenizerMismatchError(
            f"the conditioning tokenizer {cond_tokenizer_dir} was trained at {cond_tokenizer.config.resolution} px, "
            f"the condition images are {resolution} px (data.resolution)")
    return dataclasses.replace(model, num_classes=0, class_names=[], cond_vocab_size=codebook, cond_grid_size=grid,
                               condition_derive=derive)
