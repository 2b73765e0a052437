"""The Lightning Trainer both stages run under: devices, precision, checkpoints, logging."""
from __future__ import annotations

import os
import time
import warnings
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.plugins.io import TorchCheckpointIO

from .budget import StepBudget
from .callbacks import ImageGridLogger, StepProgressBar
from .config import save_config
from .schema import require
from .errors import CheckpointError
from .hardware import native_bf16
from .io import atomic_path
from .resume import ResumeState
from .run_folder import RunLock, check_fingerprint, flatten, write_fingerprint

# Expected here, not problems: checkpoints are taken after the optimizer steps (what resuming
# needs), and the frozen LPIPS network stays in eval mode during training.
warnings.filterwarnings("ignore", message=".*ModelCheckpoint with manual optimization.*")
warnings.filterwarnings("ignore", message=".*module\\(s\\) in eval mode at the start of training.*")


@dataclass
class TrainerConfig:
    """Passed on to `pl.Trainer`; `devices`, `strategy`, `num_nodes` scale out with DDP."""

    max_steps: int = 1000  # training batches; 0: chosen from budget_minutes
    budget_minutes: float = 0.0  # with max_steps=0: wall-clock budget of the run, start-up included
    accelerator: str = "auto"  # auto | cpu | gpu
    devices: str = "auto"  # "auto", a count ("8") or a list ("0,1")
    num_nodes: int = 1
    strategy: str = "auto"  # e.g. ddp
    compile: bool = False  # torch.compile the generator / GPT (faster steps on GPUs after a compile)
    precision: str = "auto"  # auto: bf16-mixed where bf16 is native (CUDA, AVX512-BF16/AMX CPUs), else 32-true
    log_every: int = 10  # batches between scalar logs
    image_every: int = 500  # batches between image grids (0: only at the end)
    checkpoint_every: int = 500  # batches between checkpoints
    val_every: int = 500  # batches between validation passes (0: never during training)
    limit_val_batches: int = 0  # 0: the whole validation split
    progress_bar: bool = True

    def __post_init__(self):
        require(self.max_steps > 0 or (self.max_steps == 0 and self.budget_minutes > 0), "trainer.max_steps",
                "must be positive, or 0 with trainer.budget_minutes > 0")
        require(self.budget_minutes >= 0, "trainer.budget_minutes", "must be >= 0")
        require(self.num_nodes > 0, "trainer.num_nodes", "must be positive")
        for key in ("log_every", "image_every", "checkpoint_every", "val_every", "limit_val_batches"):
            require(getattr(self, key) >= 0, f"trainer.{key}", "must be >= 0")


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written to a temporary file beside their target and renamed, whatever
    $TMPDIR is: a rename across filesystems is a copy, and a kill during a copy truncates."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)


def resolved_precision(config: TrainerConfig) -> str:
    """"auto": bf16-mixed where the device computes bf16 natively, fp32 elsewhere."""
    if config.precision != "auto":
        return config.precision
    use_cuda = config.accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    return "bf16-mixed" if native_bf16("cuda" if use_cuda else "cpu") else "32-true"


def _devices(value: str):
    if value == "auto":
        return "auto"
    if "," in value:
        return [int(v) for v in value.split(",") if v]
    return int(value)


def checkpoint_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / "checkpoints"


def resume_path(run_dir: str | Path, resume: str) -> str | None:
    """`resume` if given, else `<run_dir>/checkpoints/last.ckpt` when a previous run left one."""
    if resume:
        if not Path(resume).is_file():
            raise FileNotFoundError(f"resume checkpoint not found: {resume}")
        return resume
    last = checkpoint_dir(run_dir) / "last.ckpt"
    return str(last) if last.is_file() else None


def check_checkpoint(path: str | Path) -> None:
    """Refuse, before training starts, a checkpoint that does not load with weights_only=True:
    a pickle that would build arbitrary objects (and could run code) is never unpickled."""
    try:
        torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:  # noqa: BLE001 - whatever the unpickler objects to, the answer is no
        raise CheckpointError(f"refusing checkpoint {path}: it does not load as plain tensors and containers "
                              f"(weights_only=True): {str(err).splitlines()[0]}") from None


def build_trainer(config: TrainerConfig, run_dir: str | Path, callbacks: list[pl.Callback],
                  find_unused_parameters: bool = False) -> pl.Trainer:
    """`find_unused_parameters`: a module whose backward passes each reach only part of its
    parameters (the GAN's two optimizers) needs DDP to detect the unused ones."""
    run_dir = Path(run_dir)
    if config.accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ValueError(f"trainer.accelerator={config.accelerator} but no CUDA GPU is visible here; "
                         "use trainer.accelerator=auto or cpu")
    strategy = config.strategy
    if find_unused_parameters and strategy in ("ddp", "ddp_spawn", "ddp_fork"):
        strategy = f"{strategy}_find_unused_parameters_true"
    checkpoints = ModelCheckpoint(
        dirpath=checkpoint_dir(run_dir), filename="last", every_n_train_steps=config.checkpoint_every or None,
        save_top_k=1, enable_version_counter=False, save_on_train_epoch_end=False,
    )
    return pl.Trainer(
        max_steps=config.max_steps or -1,  # 0: StepBudget sets it after timing the first batches
        max_epochs=-1,
        accelerator=config.accelerator,
        devices=_devices(config.devices),
        num_nodes=config.num_nodes,
        strategy=strategy,
        precision=resolved_precision(config),
        logger=TensorBoardLogger(str(run_dir), name="tensorboard", version=""),
        callbacks=[checkpoints, *callbacks, *([StepProgressBar()] if config.progress_bar else [])],
        log_every_n_steps=config.log_every,
        # val_every=0: no validation during training (Lightning's per-epoch default is turned off too)
        val_check_interval=config.val_every or None,
        check_val_every_n_epoch=None if config.val_every else 1,
        limit_val_batches=(config.limit_val_batches or None) if config.val_every else 0,
        num_sanity_val_steps=0,
        enable_progress_bar=config.progress_bar,
        enable_model_summary=False,
        default_root_dir=str(run_dir),
        plugins=[AtomicCheckpointIO()],
        use_distributed_sampler=False,  # EpochSampler shards itself, so that a resume stays exact
    )


def _primary_process() -> bool:
    """False in the processes Lightning's DDP launcher starts for ranks > 0 (they rerun the command)."""
    return os.environ.get("LOCAL_RANK", "0") == "0" and os.environ.get("NODE_RANK", "0") == "0"


@contextmanager
def run_folder(config, run_dir: str | Path):
    """Hold `run_dir` for this run (a lock naming this process) and check that its recorded
    settings allow resuming there; yields the checkpoint to resume from, or None. Everything
    is checked before anything is written."""
    run_dir = Path(run_dir)
    primary = _primary_process()
    with RunLock(run_dir) if primary else nullcontext():
        ckpt_path = None if config.fresh else resume_path(run_dir, config.resume)
        if ckpt_path is not None:
            check_checkpoint(ckpt_path)
        if primary:
            check_fingerprint(config, run_dir, resuming=ckpt_path is not None)
        yield ckpt_path


def fit(module: pl.LightningModule, datamodule: pl.LightningDataModule, config, run_dir: str | Path,
        callbacks: list[pl.Callback] = (), started: float | None = None, ckpt_path: str | None = None) -> pl.Trainer:
    """Train `module` under `config.trainer`: image grids, checkpoints every
    `checkpoint_every` batches and at the end, exact resume from `<run_dir>/checkpoints/last.ckpt`
    (or `config.resume`), and a clean stop with a checkpoint on SIGTERM / SIGINT
    (raised as `TrainingInterrupted`). Saves the merged config and its fingerprint
    beside the outputs. Call it inside `run_folder`, which gives `ckpt_path`.
    With `trainer.max_steps=0` the number of batches comes from `trainer.budget_minutes`,
    counted from `started` (a `time.perf_counter()` value; default: now)."""
    run_dir = Path(run_dir)
    callbacks = list(callbacks)
    if config.trainer.max_steps == 0:
        callbacks.append(StepBudget(config.trainer, run_dir / "budget.json",
                                    time.perf_counter() if started is None else started))
    last = checkpoint_dir(run_dir) / "last.ckpt"
    datamodule.setup("fit")
    resume_state = ResumeState(datamodule.train_sampler, datamodule.batch_size, last)
    grids = ImageGridLogger(run_dir / "images", config.trainer.image_every)
    trainer = build_trainer(config.trainer, run_dir, [grids, resume_state, *callbacks],
                            find_unused_parameters=getattr(module, "partial_backward", False))
    if trainer.is_global_zero:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(config, run_dir / "config.yaml")
        write_fingerprint(config, run_dir)
    # TensorBoard's HPARAMS tab: every setting, lists as text
    trainer.logger.log_hyperparams({k: v if isinstance(v, (int, float, str, bool)) else str(v)
                                    for k, v in flatten(config).items()})
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    trainer.save_checkpoint(last, weights_only=False)
    resume_state.raise_if_interrupted(trainer.global_step)
    return trainer
