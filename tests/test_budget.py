"""Runs sized by wall-clock time, and precision chosen by what the hardware computes natively."""
import json
from types import SimpleNamespace

import pytest
import torch

from tests.conftest import REPO, tiny_vqgan_overrides
from vqgan import budget as budget_lib
from vqgan import hardware
from vqgan.config import load_config
from vqgan.lightning import fit_vqgan
from vqgan.optim import warmup_cosine
from vqgan.train_config import VQGANTrainConfig
from vqgan.trainer import TrainerConfig, resolved_precision

CONFIG = REPO / "configs" / "vqgan" / "emoji32.yaml"


@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_follows_native_bf16_on_the_cpu(monkeypatch, native):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(hardware, "cpu_has_native_bf16", lambda: native)
    assert resolved_precision(TrainerConfig()) == ("bf16-mixed" if native else "32-true")
    assert resolved_precision(TrainerConfig(precision="32-true")) == "32-true"


def test_no_shipped_config_forces_a_precision():
    for path in (REPO / "configs").rglob("*.yaml"):
        if path.name != "pretrained.yaml":  # the record of one run, as it was run
            assert "precision" not in path.read_text().split("#")[0], path


def test_schedule_waits_for_the_budget_before_decaying():
    assert warmup_cosine(5, 10, 0, 0.1) == pytest.approx(0.6)
    assert warmup_cosine(50, 10, 0, 0.1) == 1.0  # total not fixed yet
    assert warmup_cosine(100, 10, 100, 0.1) == pytest.approx(0.1)


def test_budget_fixes_the_steps_once_and_a_resume_keeps_them(tmp_path, emoji_subset):
    run = tmp_path / "run"
    overrides = tiny_vqgan_overrides(run, emoji_subset) + [
        "trainer.max_steps=0", "trainer.budget_minutes=0.2", "trainer.val_every=0", "trainer.image_every=0",
        "trainer.checkpoint_every=0", "optim.warmup_steps=5"]
    fit_vqgan(load_config(VQGANTrainConfig, CONFIG, overrides))
    chosen = json.loads((run / "budget.json").read_text())
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert chosen["max_steps"] > 30 and chosen["seconds_per_batch"] > 0  # beyond the 30 timed batches
    assert ckpt["global_step"] == chosen["max_steps"]
    # the cosine schedule spans the chosen number of batches: it ends at min_lr_ratio
    config = load_config(VQGANTrainConfig, CONFIG, overrides)
    final_lr = ckpt["lr_schedulers"][0]["_last_lr"][0]
    assert final_lr == pytest.approx(config.optim.lr * config.optim.min_lr_ratio, rel=0.05)

    # a rerun with a larger budget resumes and keeps the number the first run chose
    fit_vqgan(load_config(VQGANTrainConfig, CONFIG, overrides + ["trainer.budget_minutes=5"]))
    again = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert again["global_step"] == chosen["max_steps"]


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def fake_trainer():
    loop = SimpleNamespace(max_steps=-1)
    return SimpleNamespace(global_step=0, is_global_zero=True, sanity_checking=False,
                           fit_loop=SimpleNamespace(epoch_loop=loop),
                           strategy=SimpleNamespace(broadcast=lambda value, src: value))


@pytest.mark.parametrize("pass_seconds, lowered", [(0.2, False), (5.0, True)])
def test_budget_leaves_room_for_the_validation_passes(tmp_path, monkeypatch, pass_seconds, lowered):
    clock = FakeClock()
    monkeypatch.setattr(budget_lib.time, "perf_counter", clock)
    config = TrainerConfig(max_steps=0, budget_minutes=2, val_every=50)  # 120 s
    budget = budget_lib.StepBudget(config, tmp_path / "budget.json", started=0.0, skip=2, calibrate=4)
    trainer = fake_trainer()
    budget.on_train_start(trainer, None)
    for _ in range(6):  # 0.1 s a batch: 0.92 * 119.4 s -> 1,104 batches
        clock.now += 0.1
        trainer.global_step += 1
        budget.on_train_batch_end(trainer, None, None, None, 0)
    chosen = budget.max_steps
    assert chosen == 6 + int(0.92 * (120 - 0.6) / 0.1)
    for _ in range(44):
        clock.now += 0.1
        trainer.global_step += 1
        budget.on_train_batch_end(trainer, None, None, None, 0)
    budget.on_validation_start(trainer, None)
    clock.now += pass_seconds
    budget.on_validation_end(trainer, None)
    per_batch = 0.1 + pass_seconds / 50  # a pass every 50 batches
    if lowered:  # 1,054 batches and their passes would take 211 s of the 110 s left
        assert budget.max_steps == 50 + int(0.92 * (120 - clock.now) / per_batch) < chosen
        assert trainer.fit_loop.epoch_loop.max_steps == config.max_steps == budget.max_steps
        assert json.loads((tmp_path / "budget.json").read_text())["max_steps"] == budget.max_steps
    else:  # 21 passes of 0.2 s fit in the 8% kept in reserve
        assert budget.max_steps == chosen
    clock.now += 0.1  # the next batch is timed from the end of the pass
    trainer.global_step += 1
    budget.on_train_batch_end(trainer, None, None, None, 0)
    assert budget._times[-1] == pytest.approx(0.1)


def test_max_steps_needs_a_budget_when_zero():
    with pytest.raises(ValueError, match="trainer.max_steps"):
        TrainerConfig(max_steps=0)
