"""A training run sized by wall-clock time instead of a fixed number of batches."""
from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.utilities import rank_zero_info

from .io import atomic_write_text


class StepBudget(pl.Callback):
    """Times the first training batches (after `skip` batches, while data workers fill their
    queues and kernels warm up), then fixes `max_steps` so that the run, counted from
    `started`, ends within `config.budget_minutes`.

    The number is fixed once, during the learning-rate warmup, before the cosine schedule
    (which reads `config.max_steps`) starts decaying, and it is stored in checkpoints: a
    resumed run keeps it. Under DDP rank 0's number is broadcast, so all ranks stop together.
    Validation passes happen outside the timed batches: after each one the number is lowered
    if the batches and passes still to come would end past the budget.
    Written to `record` (JSON) as well, for reports.
    """

    def __init__(self, config, record: str | Path, started: float, skip: int = 10, calibrate: int = 20,
                 safety: float = 0.92):
        super().__init__()
        self.config = config  # the TrainerConfig whose max_steps the schedule reads
        self.record = Path(record)
        self.started = started
        self.skip, self.calibrate, self.safety = skip, calibrate, safety
        self.max_steps = 0
        self.seconds_per_batch = 0.0
        self._times: list[float] = []
        self._last = 0.0
        self._validation_start = 0.0

    def state_dict(self) -> dict:
        return {"max_steps": self.max_steps, "seconds_per_batch": self.seconds_per_batch}

    def load_state_dict(self, state: dict) -> None:
        self.max_steps, self.seconds_per_batch = state["max_steps"], state["seconds_per_batch"]

    def on_train_start(self, trainer, pl_module) -> None:
        if self.max_steps:
            self._apply(trainer)  # resumed: the number chosen by the first run
        self._last = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        now = time.perf_counter()
        self._times.append(now - self._last)  # batch to batch: data loading and logging included
        self._last = now
        if self.max_steps or len(self._times) < self.skip + self.calibrate:
            return
        seconds = statistics.median(self._times[self.skip:])
        remaining = self.config.budget_minutes * 60 - (now - self.started)
        steps = trainer.global_step + max(1, int(self.safety * remaining / seconds))
        self.max_steps = int(trainer.strategy.broadcast(steps, src=0))
        self.seconds_per_batch = float(trainer.strategy.broadcast(seconds, src=0))
        self._apply(trainer)
        rank_zero_info(f"budget {self.config.budget_minutes:g} min: {self.seconds_per_batch:.3f} s per batch, "
                       f"training for {self.max_steps} batches")
        self._write(trainer)

    def on_validation_start(self, trainer, pl_module) -> None:
        self._validation_start = time.perf_counter()

    def on_validation_end(self, trainer, pl_module) -> None:
        if not self.max_steps or trainer.sanity_checking:
            return
        now = time.perf_counter()
        pass_seconds = now - self._validation_start
        every = self.config.val_every
        per_batch = self.seconds_per_batch + (pass_seconds / every if every else 0.0)  # passes spread over batches
        remaining = self.config.budget_minutes * 60 - (now - self.started)
        steps = self.max_steps
        if (self.max_steps - trainer.global_step) * per_batch > remaining:  # the rest would overrun
            steps = trainer.global_step + max(1, int(self.safety * remaining / per_batch))
        steps = int(trainer.strategy.broadcast(steps, src=0))
        if steps < self.max_steps:  # the schedule's cosine shortens with it
            rank_zero_info(f"budget {self.config.budget_minutes:g} min: validation takes {pass_seconds:.1f} s, "
                           f"training for {steps} batches instead of {self.max_steps}")
            self.max_steps = steps
            self._apply(trainer)
            self._write(trainer)
        self._last = time.perf_counter()  # the next batch's time leaves the pass out

    def _write(self, trainer) -> None:
        if trainer.is_global_zero:
            atomic_write_text(self.record, json.dumps({"budget_minutes": self.config.budget_minutes,
                                                       **self.state_dict()}, indent=2))

    def _apply(self, trainer) -> None:
        self.config.max_steps = self.max_steps
        trainer.fit_loop.epoch_loop.max_steps = self.max_steps
