"""Stage-2 training: `GPTModule` (frozen tokenizer + GPT over cached codes) and `fit_gpt`."""
from __future__ import annotations

import math
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch.optim.lr_scheduler import LambdaLR
from torch.utils.data import DataLoader

from vqgan.condition_images import paired_index
from vqgan.data import ImageIndex, scan_images, training_sampler
from vqgan.images import condition_rows, image_grid
from vqgan.io import check_export_target
from vqgan.lightning import check_finite
from vqgan.model import VQGAN
from vqgan.optim import adamw, param_groups, warmup_cosine
from vqgan.trainer import fit, run_folder

from . import codes as code_cache
from .generator import build_model, frozen_tokenizer
from .metrics import LossByClass
from .pairing import TokenizerMismatchError, check_pairing, resolve_condition, resolve_model_config
from .sampling import sample_images
from .train_config import GPTTrainConfig
from .weight_average import fit_checkpoint, weight_average


class CodeDataModule(pl.LightningDataModule):
    """Train/validation codes from the cache, split exactly as stage 1 split the images."""

    def __init__(self, config: GPTTrainConfig, tokenizer: VQGAN, index: ImageIndex | None = None,
                 condition: code_cache.ConditionSource | None = None):
        super().__init__()
        self.config = config
        self.tokenizer = tokenizer
        self.index = index  # the scanned folder, when the caller has it already
        self.condition = condition  # image conditions to cache beside the codes
        self.batch_size = config.data.batch_size
        self.train_set = self.val_set = self.train_sampler = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        c = self.config
        index = self.index or scan_images(c.data.root, c.data.use_labels)
        cache_dir = Path(c.codes.cache_dir or Path(c.run_dir) / "codes")
        cache = code_cache.load_or_build(self.tokenizer, Path(c.tokenizer), index, c.data.resolution, cache_dir,
                                         c.codes.batch_size, c.data.num_workers, self.condition, c.codes.shift)
        train_ids, val_ids = index.split(c.data.val_fraction, c.data.split_seed)
        views = code_cache.training_views(cache.codes.shape[1], c.codes.flip)
        self.train_set = code_cache.CodeDataset(cache, train_ids, views, seed=c.seed)
        self.val_set = code_cache.CodeDataset(cache, val_ids)  # the images as they are
        self.train_sampler = training_sampler(index, train_ids, c.data, c.seed)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_set, batch_size=self.batch_size, sampler=self.train_sampler, drop_last=True,
                          pin_memory=torch.cuda.is_available())

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=self.config.data.batch_size)


class GPTModule(pl.LightningModule):
    def __init__(self, config: GPTTrainConfig, tokenizer: VQGAN, condition_tokenizer: VQGAN | None = None,
                 val_set=None):
        super().__init__()
        self.config = config
        self.gpt = build_model(config.model)
        # copied before compiling: the average's forward must call its own weights
        self.gpt_ema = weight_average(self.gpt, config.ema_decay) if config.ema_decay > 0 else None
        if config.trainer.compile:  # in place: parameter names, checkpoints and exports are unchanged
            self.gpt.compile()
            if self.gpt_ema is not None:  # validation runs the average
                self.gpt_ema.module.compile()
        # Kept off the module tree: not trained, not in the optimizer, not in checkpoints.
        self.__dict__["tokenizer"] = tokenizer
        self.__dict__["condition_tokenizer"] = condition_tokenizer
        self.val_set = val_set  # image conditions for the sample grids come from here
        c = self.gpt.config
        # which classes the model fits worst (an imbalanced folder's small ones, typically)
        self.val_by_class = LossByClass(c.num_classes) if c.num_classes and not c.image_conditional else None

    @property
    def inference_gpt(self):
        """The model that validation, the sample grids and the export use: the average if kept."""
        return self.gpt_ema.module if self.gpt_ema is not None else self.gpt

    def optimizer_step(self, *args, **kwargs) -> None:
        super().optimizer_step(*args, **kwargs)
        # here, not in on_train_batch_end: callbacks (checkpoints) run before that hook
        if self.gpt_ema is not None:
            self.gpt_ema.update_parameters(self.gpt)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        fit_checkpoint(checkpoint["state_dict"], averaging=self.gpt_ema is not None)

    def configure_optimizers(self):
        o, t = self.config.optim, self.config.trainer
        optimizer = adamw(param_groups(self.gpt, o.weight_decay), o.lr, o.betas, self.device)
        schedule = LambdaLR(optimizer, lambda step: warmup_cosine(step, o.warmup_steps, t.max_steps, o.min_lr_ratio))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def prefix(self, batch: dict, drop: bool) -> torch.Tensor:
        """Condition tokens; in training, labels (or whole image conditions) drop to the null
        condition with prob cond_drop, which classifier-free guidance needs."""
        c, labels = self.gpt.config, batch["label"]
        if c.image_conditional:
            prefix = self.gpt.condition_tokens(batch["cond"])  # (B, P)
            if drop and c.cond_drop > 0:
                dropped = torch.rand(prefix.shape[0], 1, device=prefix.device) < c.cond_drop
                prefix = torch.where(dropped, self.gpt.null_tokens(prefix.shape[0]), prefix)
            return prefix
        if c.num_classes == 0:
            return self.gpt.condition_tokens(None, batch=labels.shape[0])
        if drop and c.cond_drop > 0:
            dropped = torch.rand(labels.shape, device=labels.device) < c.cond_drop
            labels = torch.where(dropped, torch.full_like(labels, c.num_classes), labels)
        return self.gpt.condition_tokens(labels)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = self.gpt.loss(self.prefix(batch, drop=True), batch["codes"], self.gpt.config.label_smoothing)
        check_finite({"cross_entropy": loss}, self.global_step)
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/bits_per_token", loss / math.log(2))
        self.log("train/lr", self.lr_schedulers().get_last_lr()[0])
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        prefix, codes = self.prefix(batch, drop=False), batch["codes"]
        masks = torch.Generator(codes.device).manual_seed(batch_idx)  # MaskGIT's: the same at every pass
        losses, counted = self.inference_gpt.token_losses(prefix, codes, generator=masks)  # (B, T), (B, T)
        loss = losses[counted].mean()
        self.log("val/loss", loss, sync_dist=True, batch_size=codes.shape[0])
        self.log("val/bits_per_token", loss / math.log(2), prog_bar=True, sync_dist=True, batch_size=codes.shape[0])
        if self.val_by_class is not None:
            self.val_by_class.update(losses, counted, batch["label"])

    def on_validation_epoch_end(self) -> None:
        if self.val_by_class is None or self.val_by_class.update_count == 0:
            return
        bits = self.val_by_class.compute().tolist()  # summed over every process first
        self.val_by_class.reset()
        for name, value in zip(self.gpt.config.class_names_or_numbers, bits):
            if not math.isnan(value):  # a class without validation images
                self.log(f"val_by_class/{name}", value, rank_zero_only=True)

    def log_images(self) -> dict[str, torch.Tensor]:
        """A grid of samples: one row per class (one row if unconditional; with an image
        condition, one row per validation condition, the condition first)."""
        s, c = self.config.sample, self.gpt.config
        if c.image_conditional:
            return {"samples": self.condition_grid(s)}
        labels = torch.arange(c.num_classes).repeat_interleave(s.per_class) if c.num_classes else None
        count = labels.numel() if labels is not None else s.per_class
        images = sample_images(self.inference_gpt, self.tokenizer.to(self.device), labels, count, batch_size=count,
                               seed=s.seed, **s.generate_options(c))
        return {"samples": image_grid(images, nrow=s.per_class)}

    def condition_grid(self, s) -> torch.Tensor:
        rows = min(8, len(self.val_set))
        cond = torch.stack([self.val_set[i]["cond"] for i in range(rows)])  # (R, P)
        side = self.gpt.config.cond_grid_size
        shown = self.condition_tokenizer.to(self.device).decode(cond.view(rows, side, side).to(self.device)).cpu()
        conditions = cond.repeat_interleave(s.per_class, dim=0)
        images = sample_images(self.inference_gpt, self.tokenizer.to(self.device), conditions, len(conditions),
                               batch_size=len(conditions), seed=s.seed, **s.generate_options(self.gpt.config))
        return image_grid(condition_rows(shown, images, s.per_class), nrow=s.per_class + 1)


def fit_gpt(config: GPTTrainConfig) -> Path:
    """Build or reuse the code cache, train, and export `<run_dir>/gpt/` (with the tokenizer)."""
    started = time.perf_counter()  # a time budget counts building the code cache too
    if not config.tokenizer:
        raise ValueError("no tokenizer given: pass tokenizer=<folder exported by train_vqgan.py>")
    run_dir = Path(config.run_dir)
    export = Path(config.export_dir or run_dir / "gpt")
    check_export_target(export, "gpt")  # before training, not after
    tokenizer = frozen_tokenizer(config.tokenizer)
    index = scan_images(config.data.root, config.data.use_labels)
    cond = config.condition
    condition = None
    if cond.source == "image":
        cond_index = paired_index(index, config.data.root, cond.paired_root) if cond.paired_root else index
        condition = code_cache.ConditionSource(frozen_tokenizer(cond.tokenizer), Path(cond.tokenizer), cond_index,
                                               cond.derive)
    config.model = resolve_condition(config.model, cond.source, condition and condition.tokenizer, cond.tokenizer,
                                     cond.derive, config.data.resolution)
    names = index.class_names if cond.source == "class" else []
    config.model = resolve_model_config(config.model, tokenizer.codebook_size, tokenizer.config.grid_size,
                                        names, config.tokenizer, config.data.root)
    check_pairing(config.model, tokenizer, config.tokenizer)
    if config.data.resolution != tokenizer.config.resolution:
        raise TokenizerMismatchError(
            f"data.resolution={config.data.resolution} but the tokenizer was trained at {tokenizer.config.resolution} px")
    with run_folder(config, run_dir) as ckpt_path:
        pl.seed_everything(config.seed, workers=True)
        datamodule = CodeDataModule(config, tokenizer, index, condition)
        datamodule.setup()
        module = GPTModule(config, tokenizer, condition and condition.tokenizer, datamodule.val_set)
        trainer = fit(module, datamodule, config, run_dir, started=started, ckpt_path=ckpt_path)
        if trainer.is_global_zero:
            module.inference_gpt.save_pretrained(export, tokenizer_dir=config.tokenizer,
                                                 condition_tokenizer_dir=cond.tokenizer if condition else None)
    return export
