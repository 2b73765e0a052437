"""Exact resumption: what Lightning's checkpoints do not hold, and clean stops on signals.

Lightning restores weights, optimizers, schedulers and loop counters. For a resumed run to
continue exactly as an uninterrupted one, this adds:
- `EpochSampler`: the shuffle of epoch e comes from (seed, e) alone, and after a mid-epoch
  resume the samples already seen are skipped. It yields (epoch, index) keys so datasets can
  seed their random augmentation from them, independently of worker processes.
- `ResumeState`: a callback that checkpoints the global RNG states and the position in the
  epoch, and turns SIGTERM / SIGINT into a checkpoint at the next batch boundary and a stop
  (`TrainingInterrupted`), on every rank after the same batch.
"""
from __future__ import annotations

import math
import signal
import threading
from pathlib import Path

import pytorch_lightning as pl
import torch
import torch.distributed as dist
from torch.utils.data import Sampler


def item_seed(seed: int, epoch: int, index: int) -> int:
    """A per-item seed; python's hash of an int tuple is the same in every process."""
    return hash((seed, epoch, index)) & 0x7FFFFFFF


def _rank_and_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class EpochSampler(Sampler):
    """Yields (epoch, index) keys in an order fixed by (seed, epoch). Under DDP each rank takes
    its own share of that order (padded to equal lengths by repeating its start, as
    DistributedSampler does), so the Trainer must not wrap it (`use_distributed_sampler=False`)
    and a resume skips exactly the samples this rank has seen. With `weights` (one per item), an
    epoch is `size` draws with replacement in proportion to them (see `class_balanced_weights`)."""

    def __init__(self, size: int, seed: int, shuffle: bool = True, weights: torch.Tensor | None = None):
        if weights is not None and len(weights) != size:
            raise ValueError(f"{len(weights)} sampling weights for {size} items")
        self.size = size
        self.seed = seed
        self.shuffle = shuffle
        self.weights = weights
        self.epoch = 0
        self.skip = 0  # samples to leave out once, at the start of the next iteration

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        generator = torch.Generator().manual_seed(item_seed(self.seed, self.epoch, -1))
        if self.weights is not None:
            order = torch.multinomial(self.weights, self.size, replacement=True, generator=generator).tolist()
        elif self.shuffle:
            order = torch.randperm(self.size, generator=generator).tolist()
        else:
            order = list(range(self.size))
        rank, world = _rank_and_world()
        if world > 1:
            per_rank = math.ceil(self.size / world)
            order = (order * world)[:per_rank * world][rank::world]
        skip, self.skip = self.skip, 0
        return iter([(self.epoch, i) for i in order[skip:]])

    def __len__(self) -> int:
        return math.ceil(self.size / _rank_and_world()[1])


def class_balanced_weights(labels: list[int]) -> torch.Tensor:
    """Per-item sampling weights under which every class is drawn equally often: 1 / class size."""
    labels = torch.as_tensor(labels)  # (N,)
    counts = torch.bincount(labels).double()  # (classes,)
    return 1.0 / counts[labels]  # (N,)


class TrainingInterrupted(RuntimeError):
    """Training stopped on a signal after writing a resumable checkpoint."""


class ResumeState(pl.Callback):
    """Checkpoints RNG states and the epoch position; stops cleanly on SIGTERM / SIGINT."""

    def __init__(self, sampler: EpochSampler, batch_size: int, checkpoint_path: str | Path):
        super().__init__()
        self.sampler = sampler
        self.batch_size = batch_size
        self.checkpoint_path = Path(checkpoint_path)
        self.epoch = 0
        self.position = 0  # training batches done in the current epoch
        self.signal_received: int | None = None
        self._rng_to_restore: dict | None = None

    # --- what goes into the checkpoint --------------------------------------------------

    def state_dict(self) -> dict:
        state = {"epoch": self.epoch, "position": self.position, "rng": torch.get_rng_state()}
        if torch.cuda.is_available():
            state["cuda_rng"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: dict) -> None:
        # Called while the checkpoint is restored, before Lightning creates the data iterator
        # (it does not call on_train_epoch_start when resuming inside an epoch).
        self.epoch, self.position = state["epoch"], state["position"]
        self.sampler.set_epoch(self.epoch)
        self.sampler.skip = self.position * self.batch_size
        self._rng_to_restore = state

    def on_train_start(self, trainer, pl_module) -> None:
        if self._rng_to_restore is not None:  # after Lightning's own set-up has drawn what it draws
            torch.set_rng_state(self._rng_to_restore["rng"])
            if "cuda_rng" in self._rng_to_restore and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(self._rng_to_restore["cuda_rng"])
            self._rng_to_restore = None
        self._install_signal_handlers()

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.epoch, self.position = trainer.current_epoch, 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.position += 1
        # Every rank stops after the same batch, whichever of them the signal reached
        # (one scalar all-reduce per batch under DDP; nothing on one device).
        if trainer.strategy.reduce_boolean_decision(self.signal_received is not None, all=False):
            trainer.save_checkpoint(self.checkpoint_path, weights_only=False)
            # Raised now rather than `trainer.should_stop`, on which Lightning first runs a validation.
            raise self.interruption(trainer.global_step)

    # --- signals -------------------------------------------------------------------------

    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def request_stop(signum, frame):
            self.signal_received = signum

        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, request_stop)  # Lightning restores the previous handlers at teardown

    def interruption(self, step: int) -> TrainingInterrupted:
        name = "a signal to another rank" if self.signal_received is None else signal.Signals(self.signal_received).name
        return TrainingInterrupted(f"{name} received: stopped after training batch {step}, checkpoint "
                                   f"{self.checkpoint_path}; run the same command again to resume")

    def raise_if_interrupted(self, step: int) -> None:
        """For a signal that came after the last training batch (once the final checkpoint is written)."""
        if self.signal_received is not None:
            raise self.interruption(step)
