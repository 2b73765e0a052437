"""Lightning callbacks shared by both stages."""
from __future__ import annotations

import statistics
import time
from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.callbacks import TQDMProgressBar
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.utilities import rank_zero_only

from .images import save_png


class ImageGridLogger(pl.Callback):
    """Every `every_n_steps` training batches and at the end, ask the module for
    `log_images()` (a dict of name -> (3, H, W) uint8 grids) and write each as
    `<run_dir>/images/<name>_<step>.png` and to TensorBoard. Rank 0 only.
    """

    def __init__(self, directory: str | Path, every_n_steps: int):
        super().__init__()
        self.directory = Path(directory)
        self.every_n_steps = every_n_steps
        self.last_written_step = -1

    @rank_zero_only
    def _write(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        step = trainer.global_step
        if step == self.last_written_step:
            return
        self.last_written_step = step
        for name, grid in pl_module.log_images().items():
            save_png(grid, self.directory / f"{name}_{step:06d}.png")
            save_png(grid, self.directory / f"{name}_last.png")
            for logger in trainer.loggers:
                if isinstance(logger, TensorBoardLogger):
                    logger.experiment.add_image(name, grid, step)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.every_n_steps > 0 and trainer.global_step % self.every_n_steps == 0:
            self._write(trainer, pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        self._write(trainer, pl_module)


class StepTimer(pl.Callback):
    """Wall time of each training batch (`times`, data loading excluded) and of the wait for
    its data before it (`waits`), for step-time reports."""

    def __init__(self):
        super().__init__()
        self.times: list[float] = []
        self.waits: list[float] = []
        self._start = self._end = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._start = time.perf_counter()
        if self._end:
            self.waits.append(self._start - self._end)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._end = time.perf_counter()
        self.times.append(self._end - self._start)

    def median(self, skip: int = 5) -> float:
        """Median seconds per batch, after `skip` warm-up batches."""
        times = self.times[skip:] or self.times
        return statistics.median(times) if times else float("nan")

    def data_wait_share(self, skip: int = 5) -> float:
        """Share of the wall time spent waiting for data, after `skip` warm-up batches."""
        waits, times = sum(self.waits[skip:]), sum(self.times[skip + 1:])
        return waits / (waits + times) if waits + times > 0 else float("nan")


class StepProgressBar(TQDMProgressBar):
    """One bar over the whole run instead of one per epoch: the global step out of max_steps,
    with tqdm's rate and ETA (from this process's batches, so a resumed run's ETA holds), and
    the epoch in the description. A time budget that fixes max_steps later updates the total."""

    def on_train_start(self, trainer, pl_module) -> None:
        super().on_train_start(trainer, pl_module)
        bar = self.train_progress_bar
        bar.total = self._total(trainer)
        bar.initial = bar.n = trainer.global_step  # a resume starts part-way

    def on_train_epoch_start(self, trainer, *_) -> None:
        self.train_progress_bar.set_description(f"step (epoch {trainer.current_epoch})")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        bar = self.train_progress_bar
        if bar is None or bar.disable:
            return
        total = self._total(trainer)
        if bar.total != total:
            bar.total = total
        if self._should_update(trainer.global_step, total or 0):
            bar.n = trainer.global_step
            bar.set_postfix(self.get_metrics(trainer, pl_module))  # refreshes the bar

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        pass  # the bar lives on across epochs

    @staticmethod
    def _total(trainer) -> int | None:
        return trainer.max_steps if trainer.max_steps and trainer.max_steps > 0 else None
