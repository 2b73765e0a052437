"""Schema of a stage-2 training run; `configs/transformer/*.yaml` mirror it."""
from __future__ import annotations

from dataclasses import dataclass, field

from vqgan.schema import require
from vqgan.data import DataConfig
from vqgan.optim import OptimConfig
from vqgan.trainer import TrainerConfig

from .model import GPTConfig


@dataclass
class CodeCacheConfig:
    cache_dir: str = ""  # "": <run_dir>/codes
    batch_size: int = 64  # images per tokenizer batch while building the cache
    flip: bool = True  # train on the mirrored view too


@dataclass
class SampleConfig:
    """How `log_images` samples the grid (one row per class)."""

    per_class: int = 8
    cfg_scale: float = 2.0  # 0 or below: no guidance
    temperature: float = 1.0
    top_k: int = 0  # 0: off
    top_p: float = 1.0  # 1: off

    def __post_init__(self):
        require(self.per_class > 0, "sample.per_class", "must be positive")
        require(self.temperature > 0, "sample.temperature", "must be > 0")
        require(self.top_k >= 0, "sample.top_k", "must be >= 0")
        require(0 < self.top_p <= 1, "sample.top_p", "must be in (0, 1]")


@dataclass
class GPTTrainConfig:
    run_dir: str = "runs/gpt"
    resume: str = ""  # a .ckpt to resume from; "" resumes <run_dir>/checkpoints/last.ckpt if present
    fresh: bool = False  # start over in run_dir even if it holds a checkpoint (the old one is overwritten)
    export_dir: str = ""  # where the GPT is exported; "": <run_dir>/gpt
    seed: int = 0
    tokenizer: str = ""  # a tokenizer folder exported by stage 1 (required)
    model: GPTConfig = field(default_factory=GPTConfig)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=6e-4, betas=[0.9, 0.95], weight_decay=0.1))
    data: DataConfig = field(default_factory=lambda: DataConfig(batch_size=64, num_workers=0))
    codes: CodeCacheConfig = field(default_factory=CodeCacheConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
