"""A run folder: one live run at a time, and a resume only under the settings it started with."""
import json
import socket
import subprocess
import sys

import pytest
import torch

from tests.conftest import REPO, tiny_vqgan_overrides
from vqgan.config import ConfigError, load_config
from vqgan.lightning import fit_vqgan
from vqgan.run_folder import RunFolderBusy, RunLock
from vqgan.train_config import VQGANTrainConfig

CONFIG = REPO / "configs" / "vqgan" / "emoji32.yaml"


def tiny(run, data, *extra):
    return load_config(VQGANTrainConfig, CONFIG, tiny_vqgan_overrides(run, data, steps=2) + [
        "trainer.val_every=0", "trainer.image_every=0", *extra])


def test_resume_with_changed_state_settings_is_refused_before_writing(tmp_path, emoji_subset):
    run = tmp_path / "run"
    fit_vqgan(tiny(run, emoji_subset))
    saved = (run / "config.yaml").read_text()
    with pytest.raises(ConfigError, match=r"optim.lr: 0.0004 -> 0.001.*fresh=true"):
        fit_vqgan(tiny(run, emoji_subset, "optim.lr=1e-3", "trainer.max_steps=3"))
    with pytest.raises(ConfigError, match="model.ch: 16 -> 24"):
        fit_vqgan(tiny(run, emoji_subset, "model.ch=24", "trainer.max_steps=3"))
    assert (run / "config.yaml").read_text() == saved
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 2

    fit_vqgan(tiny(run, emoji_subset, "trainer.max_steps=3", "trainer.log_every=2"))  # may change: resumes
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 3
    fit_vqgan(tiny(run, emoji_subset, "optim.lr=1e-3", "fresh=true"))  # starts over, as asked
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 2
    assert json.loads((run / "fingerprint.json").read_text())["optim.lr"] == 1e-3

    # a run started before a setting existed resumes under its default, and only that
    recorded = json.loads((run / "fingerprint.json").read_text())
    assert recorded.pop("loss.lecam_weight") == 0.0
    (run / "fingerprint.json").write_text(json.dumps(recorded))
    with pytest.raises(ConfigError, match="loss.lecam_weight: 0.0 -> 0.5"):
        fit_vqgan(tiny(run, emoji_subset, "optim.lr=1e-3", "loss.lecam_weight=0.5", "trainer.max_steps=3"))
    fit_vqgan(tiny(run, emoji_subset, "optim.lr=1e-3", "trainer.max_steps=3"))
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 3


def test_a_live_run_keeps_its_folder_and_a_dead_ones_lock_is_taken_over(tmp_path, emoji_subset):
    run = tmp_path / "run"
    run.mkdir()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (run / ".lock").write_text(json.dumps({"pid": live.pid, "host": socket.gethostname()}))
        with pytest.raises(RunFolderBusy, match=f"in use by process {live.pid}"):
            fit_vqgan(tiny(run, emoji_subset))
        assert not (run / "checkpoints").exists()
    finally:
        live.kill()
        live.wait()
    fit_vqgan(tiny(run, emoji_subset))  # the holder is gone: its lock is stale
    assert not (run / ".lock").exists()
    with RunLock(run):
        with pytest.raises(RunFolderBusy):
            RunLock(run).__enter__()
