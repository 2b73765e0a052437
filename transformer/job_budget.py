"""How the main job splits a wall-clock budget: the evaluation's time is measured up front (its
cost is fixed by its sample counts), the rest goes to the two training stages in fixed shares."""
from __future__ import annotations

import time

import torch

from vqgan.data import DataConfig
from vqgan.model import VQGAN, VQGANConfig

from .eval_config import EvalConfig
from .evaluation import evaluation_set
from .generator import build_model
from .model import GPTConfig
from .sampling import sample_images

STAGE1_SHARE = 0.62  # of the training time; stage 2 gets what stage 1 leaves
# An image-conditional job trains its conditioning tokenizer first, with this share of the training
# time (condition images such as silhouettes are simpler than the images); stage 1 then takes
# STAGE1_SHARE of what is left.
CONDITION_SHARE = 0.15
FIXED_EVAL_S = 15.0  # loading LPIPS and Inception, two Frechet distances, grids
END_MARGIN_S = 20.0  # process start-up and teardown outside the stages


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def estimate_evaluation_seconds(tokenizer: VQGANConfig, gpt: GPTConfig, data: DataConfig, config: EvalConfig,
                                fid) -> float:
    """Seconds the evaluation will take on this machine: one batch of each kind of work is timed
    (Inception features, sampling with the configured guidance, decoding) with random weights,
    whose speed is that of trained ones, and scaled to the evaluation's image counts. Not under
    inference mode: `fid` is used again by the evaluation, and its states must stay ordinary
    tensors (generate and decode switch off gradients themselves)."""
    batch = config.batch_size
    num_real = len(evaluation_set(data, config.split, config.num_real))
    per_feature = 0.0
    if fid is not None:
        images = torch.randint(0, 256, (batch, 3, data.resolution, data.resolution), dtype=torch.uint8)
        for _ in range(2):  # warm-up: TorchScript optimises the graph after its profiling runs
            fid.update(images, real=False)
        per_feature = _seconds(lambda: fid.update(images, real=False)) / batch
        fid.reset()
    model = build_model(gpt).eval()
    decoder = VQGAN(tokenizer).eval()
    labels = torch.arange(batch) % gpt.num_classes if gpt.num_classes else None
    if gpt.image_conditional:  # random condition codes: their values do not change the cost
        labels = torch.randint(0, gpt.cond_vocab_size, (batch, gpt.cond_grid_size, gpt.cond_grid_size))
    options = config.generate_options(gpt)
    per_sample = _seconds(lambda: sample_images(model, decoder, labels, batch, batch, **options)) / batch
    samples = config.num_samples
    return FIXED_EVAL_S + per_feature * (2 * num_real + samples) + per_sample * samples
