"""What `evaluate` measures and how it samples for gFID; the `eval:` section of the main job and
the schema behind scripts/evaluate.py's flags. Light: no torch."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from vqgan.schema import require

from .sampling_config import SamplingConfig


@dataclass
class EvalConfig(SamplingConfig):
    split: str = "val"  # "val" (the runs' held-out split), "train" (the rest: tune sampling there) or "all"
    num_real: int = 0  # 0: every image of the split; N: N of them drawn with seed 0 (train: as many as val has)
    batch_size: int = 50
    lpips_net: str = "alex"
    lpips_weights: str = ""  # "": $VQGAN_LPIPS_WEIGHTS
    fid_weights: str = ""  # "": $VQGAN_FID_WEIGHTS; "torch-fidelity": download; "off": no rFID / gFID
    num_samples: int = 300  # gFID samples, class-balanced
    # true: also the FID of num_samples real images of the other split, as they are and
    # reconstructed: the floors gFID can reach with this sample size and this tokenizer
    floors: bool = False

    section: ClassVar[str] = "eval"

    def __post_init__(self):
        super().__post_init__()
        require(self.split in ("val", "train", "all"), "eval.split", "must be 'val', 'train' or 'all'")
        require(self.lpips_net in ("alex", "vgg"), "eval.lpips_net", "must be 'alex' or 'vgg'")
        require(self.num_real >= 0, "eval.num_real", "must be >= 0 (0: the whole split)")
        require(not self.floors or self.split != "all", "eval.floors",
                "needs images outside the evaluated split: evaluate split 'val' or 'train'")
        require(not self.floors or self.num_samples >= 2, "eval.floors", "needs eval.num_samples >= 2")
        require(self.batch_size > 0 and self.num_samples >= 0, "eval.batch_size", "and eval.num_samples must be positive")
