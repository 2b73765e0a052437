"""An exponential moving average (EMA) of the GPT's weights, kept beside it during training.

`ema_decay > 0` in a stage-2 config: after every optimizer step the average moves towards the
trained weights by (1 - decay); validation, the sample grids and the export use the average.
Checkpoints hold it under `gpt_ema.`, so a resumed run continues the same average.
"""
from __future__ import annotations

from functools import partial

import torch
from pytorch_lightning.utilities.rank_zero import rank_zero_warn
from torch import nn
from torch.optim.swa_utils import AveragedModel

MODEL_PREFIX = "gpt."  # where GPTModule keeps the trained model, and
AVERAGE_PREFIX = "gpt_ema."  # its average, in a checkpoint's state_dict


def ema_step(averaged: list[torch.Tensor], current: list[torch.Tensor], num_averaged, decay: float) -> None:
    """One EMA step in place, with the signature of AveragedModel's `multi_avg_fn` (which
    copies on the first update itself, so `num_averaged` is not needed here)."""
    for average, value in zip(averaged, current):
        average.lerp_(value, 1 - decay)  # decay * average + (1 - decay) * value


def weight_average(model: nn.Module, decay: float) -> AveragedModel:
    """A frozen copy of `model` whose `update_parameters(model)` takes an EMA step (the first
    call copies). Buffers are not averaged: the GPT's (RoPE tables) are constants."""
    # a partial of a module-level function, not torch's closure: spawned DDP processes unpickle it
    average = AveragedModel(model, multi_avg_fn=partial(ema_step, decay=decay), use_buffers=False)
    return average.requires_grad_(False)


def fit_checkpoint(state: dict[str, torch.Tensor], averaging: bool) -> None:
    """Make a checkpoint's `state_dict` fit a module with (`averaging`) or without a weight
    average, in place. Switched on for a run that had none: the average starts from the
    checkpoint's weights. Switched off: the checkpoint's average is left out, with a warning."""
    has_average = any(key.startswith(AVERAGE_PREFIX) for key in state)
    if averaging and not has_average:
        for key in [k for k in state if k.startswith(MODEL_PREFIX)]:
            state[AVERAGE_PREFIX + "module." + key[len(MODEL_PREFIX):]] = state[key].clone()
        state[AVERAGE_PREFIX + "n_averaged"] = torch.tensor(1, dtype=torch.long)
    elif has_average and not averaging:
        rank_zero_warn("the checkpoint holds a moving average of the weights, and ema_decay=0 leaves it out: "
                       "training goes on from the trained weights (the checkpoint file keeps the average until "
                       "the run writes its next checkpoint)")
        for key in [k for k in state if k.startswith(AVERAGE_PREFIX)]:
            del state[key]
