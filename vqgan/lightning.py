"""Stage-1 training: `VQGANModule` (manual optimization of generator and discriminator)
and `fit_vqgan`, which runs a whole training from a config and exports the tokenizer."""
from __future__ import annotations

import time
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import rank_zero_info, rank_zero_only
from torch.optim.lr_scheduler import LambdaLR

from . import losses
from .data import ImageDataModule
from .discriminator import PatchDiscriminator
from .export import read_config
from .images import image_grid, paired_rows
from .io import check_export_target
from .metrics import image_quality
from .model import CODE_MODULES, VQGAN, VQGANConfig, VQGANOutput
from .optim import adamw, param_groups, warmup_cosine
from .perceptual import LPIPS
from .run_folder import flatten
from .schema import ConfigError
from .train_config import VQGANTrainConfig
from .trainer import fit, run_folder

NUM_LOGGED_IMAGES = 16


class NonFiniteLossError(FloatingPointError):
    """A loss term became NaN or infinite; training stops before it reaches the weights."""


def check_finite(terms: dict[str, torch.Tensor], step: int) -> None:
    bad = [name for name, value in terms.items() if not torch.isfinite(value).all()]
    if bad:
        raise NonFiniteLossError(f"non-finite loss at training batch {step}: {', '.join(bad)}")


class VQGANModule(pl.LightningModule):
    """VQGAN + LPIPS + PatchGAN. Discriminator steps are counted in training batches:
    its optimizer is stepped directly, so `global_step` counts generator steps only."""

    def __init__(self, config: VQGANTrainConfig):
        super().__init__()
        self.config = config
        self.automatic_optimization = False
        self.partial_backward = config.loss.gan  # each backward reaches G or D only (see build_trainer)
        self.model = VQGAN(config.model)
        if config.decoder_only:
            for name in CODE_MODULES:
                getattr(self.model, name).requires_grad_(False)
        if config.trainer.compile:  # in place: parameter names, checkpoints and exports are unchanged
            self.model.encoder.compile()
            self.model.decoder.compile()
        loss = config.loss
        # Frozen and rebuilt from its weights file: kept off the module tree, out of checkpoints.
        self.__dict__["perceptual"] = LPIPS(loss.perceptual) if loss.perceptual_weight > 0 else None
        self.discriminator = PatchDiscriminator(loss.discriminator, config.model.out_ch) if loss.gan else None
        self.register_buffer("lecam_ema_real", torch.zeros(()))
        self.register_buffer("lecam_ema_fake", torch.zeros(()))
        self._image_batch: torch.Tensor | None = None

    # --- optimizers ------------------------------------------------------------------

    def configure_optimizers(self):
        o, t = self.config.optim, self.config.trainer
        schedule = lambda step: warmup_cosine(step, o.warmup_steps, t.max_steps, o.min_lr_ratio)  # noqa: E731
        opt_g = adamw(param_groups(self.model, o.weight_decay), o.lr, o.betas, self.device)
        optimizers, schedulers = [opt_g], [LambdaLR(opt_g, schedule)]
        if self.discriminator is not None:
            lr = self.config.loss.disc_lr or o.lr
            opt_d = adamw(param_groups(self.discriminator, o.weight_decay), lr, o.betas, self.device)
            optimizers.append(opt_d)
            schedulers.append(LambdaLR(opt_d, schedule))
        return optimizers, schedulers

    def on_fit_start(self) -> None:
        if self.perceptual is not None:
            self.perceptual.to(self.device)
        if self.discriminator is not None:
            rank_zero_info(self.discriminator.check_image_size(self.config.data.resolution))

    def forward_model(self, x: torch.Tensor) -> VQGANOutput:
        """The model's forward; under decoder_only the code-deciding parts run frozen in eval
        mode (no EMA codebook updates, no dead-code restarts), so the codes never change."""
        if not self.config.decoder_only:
            return self.model(x)
        for name in CODE_MODULES:
            getattr(self.model, name).eval()
        quantize = self.model.quantize
        with torch.no_grad():
            q = quantize(self.model.encode_latent(x))
            quantize.usage.update(q.indices)  # eval mode skips the usage window the logs report
            q.stats.update(quantize.usage_stats())
        return VQGANOutput(self.model.decode_latent(q.z_q), q)

    # --- losses ----------------------------------------------------------------------

    def reconstruction_terms(self, x: torch.Tensor, x_hat: torch.Tensor) -> dict[str, torch.Tensor]:
        c = self.config.loss
        terms = {"rec": losses.reconstruction_loss(x, x_hat, c.rec_loss)}
        if c.l2_weight > 0:
            terms["l2"] = losses.reconstruction_loss(x, x_hat, "l2")
        if self.perceptual is not None:
            terms["perceptual"] = self.perceptual(x.float(), x_hat.float()).mean()
        return terms

    def nll(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        c = self.config.loss
        total = c.rec_weight * terms["rec"]
        if "l2" in terms:
            total = total + c.l2_weight * terms["l2"]
        if "perceptual" in terms:
            total = total + c.perceptual_weight * terms["perceptual"]
        return total

    def training_step(self, batch: dict, batch_idx: int) -> None:
        c = self.config.loss
        step = self.global_step  # training batches completed so far
        x = batch["image"]
        optimizers = self.optimizers()
        optimizers = optimizers if isinstance(optimizers, list) else [optimizers]
        schedulers = self.lr_schedulers()
        schedulers = schedulers if isinstance(schedulers, list) else [schedulers]
        adv_factor = losses.adversarial_factor(step, c.disc_start, c.disc_ramp) if c.gan else 0.0

        # generator: reconstruction + perceptual + codebook (+ adaptively weighted adversarial)
        opt_g = optimizers[0]
        self.toggle_optimizer(opt_g)
        out = self.forward_model(x)
        x_hat = out.reconstruction
        terms = self.reconstruction_terms(x, x_hat)
        nll = self.nll(terms)
        terms["codebook"] = out.quantizer.loss
        loss_g = nll + c.codebook_weight * out.quantizer.loss
        logs = {}
        if adv_factor > 0:
            terms["g_adv"] = losses.generator_loss(self.discriminator(x_hat), c.disc_loss)
            weight = losses.adaptive_weight(nll, terms["g_adv"], self.model.last_layer, c.max_adaptive_weight)
            loss_g = loss_g + adv_factor * c.disc_weight * weight * terms["g_adv"]
            logs["train/adaptive_weight"] = weight
            logs["train/adv_factor"] = torch.tensor(adv_factor)
        terms["total"] = loss_g
        check_finite(terms, step)
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(loss_g)
        self._clip(opt_g)
        opt_g.step()
        schedulers[0].step()
        self.untoggle_optimizer(opt_g)

        # discriminator: its own step from the same batch, once disc_start is reached
        if self.discriminator is not None and step >= c.disc_start:
            opt_d = optimizers[1]
            self.toggle_optimizer(opt_d)
            logits_real = self.discriminator(x.detach())
            logits_fake = self.discriminator(x_hat.detach())
            loss_d = losses.discriminator_loss(logits_real, logits_fake, c.disc_loss)
            if c.lecam_weight > 0:
                loss_d = loss_d + c.lecam_weight * losses.lecam_loss(
                    logits_real, logits_fake, self.lecam_ema_real, self.lecam_ema_fake)
                with torch.no_grad():
                    self.lecam_ema_real.lerp_(logits_real.mean().float(), 1 - c.lecam_decay)
                    self.lecam_ema_fake.lerp_(logits_fake.mean().float(), 1 - c.lecam_decay)
            check_finite({"disc": loss_d}, step)
            opt_d.zero_grad(set_to_none=True)
            self.manual_backward(loss_d)
            self._clip(opt_d)
            opt_d.optimizer.step()  # the raw optimizer: leaves global_step at one per batch
            schedulers[1].step()
            self.untoggle_optimizer(opt_d)
            logs["train/disc"] = loss_d.detach()
            logs["train/logits_real"] = logits_real.detach().mean()
            logs["train/logits_fake"] = logits_fake.detach().mean()

        logs.update({f"train/{k}": v.detach() for k, v in terms.items()})
        logs.update({f"train/{k}": v for k, v in out.quantizer.stats.items()})
        logs["train/lr"] = torch.tensor(schedulers[0].get_last_lr()[0])
        self.log_dict(logs, on_step=True, on_epoch=False, sync_dist=False)
        self.log("rec", terms["rec"].detach(), prog_bar=True, logger=False)
        self.log("usage", out.quantizer.stats["usage"], prog_bar=True, logger=False)

    def _clip(self, optimizer) -> None:
        if self.config.optim.grad_clip > 0:
            self.clip_gradients(optimizer, gradient_clip_val=self.config.optim.grad_clip, gradient_clip_algorithm="norm")

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        x = batch["image"]
        out = self.model(x)
        terms = self.reconstruction_terms(x, out.reconstruction)
        logs = {f"val/{k}": v for k, v in terms.items()}
        # per image, then averaged over images: the PSNR of metrics.json (vqgan/metrics.py)
        logs["val/psnr"] = image_quality(x, out.reconstruction)["psnr"].mean()
        self.log_dict(logs, on_epoch=True, sync_dist=True, batch_size=x.shape[0])

    # --- images -----------------------------------------------------------------------

    def log_images(self) -> dict[str, torch.Tensor]:
        """Validation inputs (rows) over their reconstructions, as one uint8 grid."""
        if self._image_batch is None:
            dataset = self.trainer.datamodule.val_set
            if dataset is None or len(dataset) == 0:
                dataset = self.trainer.datamodule.train_set
            count = min(NUM_LOGGED_IMAGES, len(dataset))
            self._image_batch = torch.stack([dataset[i]["image"] for i in range(count)])
        x = self._image_batch.to(self.device)
        x_hat = self.model.reconstruct(x)
        return {"reconstructions": image_grid(paired_rows(x, x_hat, per_row=8), nrow=8)}


def init_from_export(model: VQGAN, directory: str | Path) -> None:
    """Load the exported tokenizer in `directory` into `model` for fine-tuning; its config.json
    must describe the same model (the differing keys are named otherwise)."""
    exported = read_config(VQGANConfig, directory)
    ours, theirs = flatten(model.config, "model."), flatten(exported, "model.")
    differing = sorted(k for k in ours if ours[k] != theirs.get(k))
    if differing:
        details = ", ".join(f"{k}: {theirs.get(k)!r} there, {ours[k]!r} here" for k in differing[:4])
        raise ConfigError(f"init_from={directory} is a different model ({details}); "
                          "its model settings must be this config's")
    state = VQGAN.from_pretrained(directory).export_state_dict()  # keys checked by the loader
    model.load_state_dict(state, strict=False)  # the training-time statistics are not exported
    model.quantize.adopt_codebook()


def fit_vqgan(config: VQGANTrainConfig, callbacks: list[pl.Callback] = ()) -> Path:
    """Train from `config` (resuming when a checkpoint is there), then export the tokenizer.

    Writes under `config.run_dir`: config.yaml, classes.json, checkpoints/last.ckpt,
    images/*.png, tensorboard/ and tokenizer/ (or `export_dir`). Returns the tokenizer folder.
    """
    started = time.perf_counter()  # a time budget counts the set-up too
    run_dir = Path(config.run_dir)
    tokenizer_dir = Path(config.export_dir or run_dir / "tokenizer")
    check_export_target(tokenizer_dir, "tokenizer")  # before training, not after
    with run_folder(config, run_dir) as ckpt_path:
        pl.seed_everything(config.seed, workers=True)
        datamodule = ImageDataModule(config.data, seed=config.seed)
        datamodule.setup()
        rank_zero_only(datamodule.save_class_names)(run_dir / "classes.json")
        module = VQGANModule(config)
        if config.init_from and ckpt_path is None:
            init_from_export(module.model, config.init_from)
        trainer = fit(module, datamodule, config, run_dir, callbacks, started, ckpt_path)
        if trainer.is_global_zero:
            module.model.save_pretrained(tokenizer_dir)
    return tokenizer_dir
