"""Schema of a stage-1 training run; `configs/vqgan/*.yaml` mirror it."""
from __future__ import annotations

from dataclasses import dataclass, field

from .schema import require
from .data import DataConfig
from .discriminator import DiscriminatorConfig
from .model import VQGANConfig
from .optim import OptimConfig
from .perceptual import PerceptualConfig
from .trainer import TrainerConfig

REC_LOSSES = ("l1", "l2")
ADV_LOSSES = ("hinge", "non_saturating")


@dataclass
class LossConfig:
    """Weights of the loss terms. The GAN is off when `disc_weight` is 0."""

    rec_loss: str = "l1"  # l1 | l2
    rec_weight: float = 1.0
    l2_weight: float = 0.0  # an extra squared-error term on top of rec_loss
    codebook_weight: float = 1.0
    perceptual_weight: float = 1.0  # 0: no LPIPS
    perceptual: PerceptualConfig = field(default_factory=PerceptualConfig)
    disc_weight: float = 0.5  # scales the adaptive weight; 0: no GAN
    disc_start: int = 2000  # training batch at which D and the adversarial term start
    disc_ramp: int = 0  # batches over which the generator's adversarial term ramps up
    disc_loss: str = "hinge"  # hinge | non_saturating
    disc_lr: float = 0.0  # 0: the generator's optim.lr
    max_adaptive_weight: float = 1e4
    lecam_weight: float = 0.0  # LeCam regularisation of D (0: off)
    lecam_decay: float = 0.999
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)

    def __post_init__(self):
        require(self.rec_loss in REC_LOSSES, "loss.rec_loss", f"must be one of {REC_LOSSES}")
        require(self.disc_loss in ADV_LOSSES, "loss.disc_loss", f"must be one of {ADV_LOSSES}")
        for key in ("rec_weight", "l2_weight", "codebook_weight", "perceptual_weight", "disc_weight",
                    "disc_start", "disc_ramp", "disc_lr", "lecam_weight"):
            require(getattr(self, key) >= 0, f"loss.{key}", "must be >= 0")

    @property
    def gan(self) -> bool:
        return self.disc_weight > 0


@dataclass
class VQGANTrainConfig:
    run_dir: str = "runs/vqgan"
    resume: str = ""  # a .ckpt to resume from; "" resumes <run_dir>/checkpoints/last.ckpt if present
    fresh: bool = False  # start over in run_dir even if it holds a checkpoint (the old one is overwritten)
    export_dir: str = ""  # where the tokenizer is exported; "": <run_dir>/tokenizer
    # fine-tuning, e.g. adding the GAN to a trained tokenizer: optimizers and steps start afresh
    init_from: str = ""  # a tokenizer export (same model settings) whose weights start a new run
    # the codes stay those of init_from, so a GPT trained on them works with the new decoder
    decoder_only: bool = False  # train the decoder alone; the encoder and codebook stay init_from's
    seed: int = 0
    model: VQGANConfig = field(default_factory=VQGANConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)

    def __post_init__(self):
        require(not self.decoder_only or self.init_from, "decoder_only",
                "needs init_from=<a trained tokenizer export>: it keeps that tokenizer's encoder and codebook")
        require(
            self.data.resolution == self.model.resolution, "data.resolution",
            f"({self.data.resolution}) must equal model.resolution ({self.model.resolution})",
        )
