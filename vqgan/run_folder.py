"""One live run per run folder, and one configuration of what shapes its state.

- `RunLock`: `<run_dir>/.lock` names the process that holds the folder; a second run is
  refused while that process lives, and a lock left by a dead process is taken over.
- `check_fingerprint`: `<run_dir>/fingerprint.json` records every setting that shapes the
  state a checkpoint holds. Resuming with a different value of one of them is refused, naming
  it, before anything is written; `fresh=true` (or a new run_dir) starts over instead. The
  settings in `MAY_CHANGE_ON_RESUME` may change.
"""
from __future__ import annotations

import dataclasses
import json
import os
import socket
from pathlib import Path

from .config import ConfigError
from .io import atomic_write_text

MAY_CHANGE_ON_RESUME = (
    "run_dir", "resume", "export_dir", "init_from", "fresh", "data.num_workers", "codes.cache_dir", "codes.batch_size",
    "trainer.max_steps", "trainer.budget_minutes", "trainer.log_every", "trainer.image_every",
    "trainer.checkpoint_every", "trainer.val_every", "trainer.limit_val_batches", "trainer.progress_bar",
    "trainer.accelerator", "trainer.devices", "trainer.num_nodes", "trainer.strategy", "trainer.compile",
    "sample.per_class", "sample.cfg_scale", "sample.temperature", "sample.top_k", "sample.top_p", "sample.seed",
    "model.class_names",  # filled in from data.root, which is checked
    "ema_decay",  # switched on, the average starts from the weights; off, it is left out (weight_average.py)
)
FINGERPRINT = "fingerprint.json"


class RunFolderBusy(ConfigError):
    """Another live process holds the run folder."""


def flatten(config, prefix: str = "") -> dict:
    """A dataclass config as {"dotted.key": value}."""
    items = {}
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        key = f"{prefix}{field.name}"
        if dataclasses.is_dataclass(value):
            items.update(flatten(value, f"{key}."))
        else:
            items[key] = value
    return items


def state_settings(config) -> dict:
    return {k: v for k, v in flatten(config).items() if k not in MAY_CHANGE_ON_RESUME}


def _as_json(settings: dict) -> dict:
    """The settings as JSON would give them back (tuples as lists, other values as text)."""
    return json.loads(json.dumps(settings, default=str))


def check_fingerprint(config, run_dir: Path, resuming: bool) -> None:
    """Refuse to resume `run_dir` under settings that differ from those it was started with. A
    setting the recorded run does not name (one added to the schema since) counts as its default."""
    path = run_dir / FINGERPRINT
    current = _as_json(state_settings(config))
    if resuming and path.is_file():
        recorded = _as_json(state_settings(type(config)())) | json.loads(path.read_text())
        changed = sorted(k for k in set(recorded) | set(current) if recorded.get(k) != current.get(k))
        if changed:
            shown = ", ".join(f"{k}: {recorded.get(k)!r} -> {current.get(k)!r}" for k in changed[:3])
            raise ConfigError(f"{run_dir} holds a run started with other settings ({shown}); resuming would "
                              f"mix them. Use a new run_dir, or fresh=true to start this folder over")


def write_fingerprint(config, run_dir: Path) -> None:
    atomic_write_text(run_dir / FINGERPRINT, json.dumps(state_settings(config), indent=1, default=str))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    """Exclusive use of a run folder by this process, as a context manager."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / ".lock"
        self.held = False

    def __enter__(self) -> "RunLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        me = {"pid": os.getpid(), "host": socket.gethostname()}
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                if holder and (holder.get("host") != me["host"] or _alive(int(holder.get("pid", -1)))):
                    raise RunFolderBusy(f"{self.path.parent} is in use by process {holder.get('pid')} on "
                                        f"{holder.get('host')} (lock {self.path}); wait for it or use another "
                                        f"run_dir") from None
                self.path.unlink(missing_ok=True)  # left by a process that no longer runs: take it over
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            self.held = True
            return self
        raise RunFolderBusy(f"could not take the lock {self.path}")

    def _holder(self) -> dict | None:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None

    def __exit__(self, *exc) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False
