"""Schema of a stage-2 training run; `configs/transformer/*.yaml` mirror it."""
from __future__ import annotations

from dataclasses import dataclass, field

from vqgan.schema import require
from vqgan.data import DERIVED, DataConfig
from vqgan.optim import OptimConfig
from vqgan.trainer import TrainerConfig

from .model import GPTConfig
from .sampling_config import SamplingConfig


@dataclass
class CodeCacheConfig:
    cache_dir: str = ""  # "": <run_dir>/codes
    batch_size: int = 64  # images per tokenizer batch while building the cache
    flip: bool = True  # train on the mirrored view too
    # more code grids from a small image set: (2 shift + 1)^2 offsets, each with its flip, cached
    shift: int = 0  # > 0: also train on each image moved by up to this many pixels in x and y

    def __post_init__(self):
        require(self.shift >= 0, "codes.shift", "must be 0 or more pixels")


CONDITION_SOURCES = ("class", "none", "image")


@dataclass
class ConditionConfig:
    """What the GPT is conditioned on. image: the codes of a second, conditioning tokenizer (any
    stage-1 export) for a condition image per training image, read from `paired_root` (same
    relative path as in data.root, any image format) or derived from the image by `derive`."""

    source: str = "class"  # class (the class folders; model.num_classes=0: none), none, or image
    tokenizer: str = ""  # image: the conditioning tokenizer folder
    paired_root: str = ""  # image: a folder of condition images mirroring data.root
    derive: str = ""  # image, without paired_root: silhouette / grayscale / lowres

    def __post_init__(self):
        require(self.source in CONDITION_SOURCES, "condition.source", f"must be one of {CONDITION_SOURCES}")
        if self.source == "image":
            require(bool(self.tokenizer), "condition.tokenizer", "must name a stage-1 export for source=image")
            require(bool(self.paired_root) != bool(self.derive), "condition.paired_root",
                    "or condition.derive (silhouette / grayscale / lowres): give exactly one for source=image")
            require(self.derive in ("", *DERIVED), "condition.derive",
                    "must be silhouette, grayscale or lowres")


@dataclass
class SampleConfig(SamplingConfig):
    """How `log_images` samples the grid (one row per class)."""

    per_class: int = 8

    def __post_init__(self):
        super().__post_init__()
        require(self.per_class > 0, "sample.per_class", "must be positive")


@dataclass
class GPTTrainConfig:
    run_dir: str = "runs/gpt"
    resume: str = ""  # a .ckpt to resume from; "" resumes <run_dir>/checkpoints/last.ckpt if present
    fresh: bool = False  # start over in run_dir even if it holds a checkpoint (the old one is overwritten)
    export_dir: str = ""  # where the GPT is exported; "": <run_dir>/gpt
    seed: int = 0
    tokenizer: str = ""  # a tokenizer folder exported by stage 1 (required)
    # vocab_size / grid_size from the tokenizer and num_classes from data.root, unless given
    model: GPTConfig = field(default_factory=lambda: GPTConfig(vocab_size=0, grid_size=0, num_classes=-1))
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=6e-4, betas=[0.9, 0.95], weight_decay=0.1))
    data: DataConfig = field(default_factory=lambda: DataConfig(batch_size=64, num_workers=0))
    codes: CodeCacheConfig = field(default_factory=CodeCacheConfig)
    condition: ConditionConfig = field(default_factory=ConditionConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    # transformer/weight_average.py; may change on resume
    ema_decay: float = 0.0  # > 0: validation, sample grids and export use a moving average of the weights (e.g. 0.999)

    def __post_init__(self):
        require(0 <= self.ema_decay < 1, "ema_decay", "must be in [0, 1) (0: no moving average)")
