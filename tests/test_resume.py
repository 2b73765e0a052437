"""A run killed with SIGKILL and resumed ends with the same weights as a run never interrupted."""
import signal
import subprocess
import time

import pytest
import torch
from safetensors.torch import load_file
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.conftest import GPT_SCRIPT, VQGAN_SCRIPT, tiny_gpt_overrides, tiny_vqgan_overrides


def checkpoint_step(path) -> int:
    return torch.load(path, weights_only=True, map_location="cpu")["global_step"]


def run(cmd: list[str]) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]


def run_and_kill(cmd: list[str], run_dir, total_steps: int) -> int:
    """Start a run, SIGKILL it as soon as its first checkpoint exists; return that step."""
    last = run_dir / "checkpoints" / "last.ckpt"
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not last.exists() and proc.poll() is None:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    step = checkpoint_step(last)
    assert 0 < step < total_steps, "the run was not interrupted mid-way"
    return step


def weights(directory) -> dict[str, torch.Tensor]:
    return load_file(str(directory / "model.safetensors"))


def test_gpt_resume_after_sigkill_is_bitwise_identical(tmp_path, emoji_subset, tiny_tokenizer):
    steps = 40
    extra = ["trainer.checkpoint_every=5", "trainer.image_every=0", "trainer.val_every=0", "model.dropout=0.1",
             "ema_decay=0.9"]  # the export is the moving average: it resumes exactly too
    straight = tmp_path / "straight"
    run(GPT_SCRIPT + tiny_gpt_overrides(straight, emoji_subset, tiny_tokenizer, steps) + extra)
    broken = tmp_path / "broken"
    cmd = GPT_SCRIPT + tiny_gpt_overrides(broken, emoji_subset, tiny_tokenizer, steps) + extra
    run_and_kill(cmd, broken, steps)
    run(cmd)  # the same command resumes from last.ckpt
    a, b = weights(straight / "gpt"), weights(broken / "gpt")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    trained = [torch.load(d / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"] for d in (straight, broken)]
    assert all(torch.equal(trained[0][k], trained[1][k]) for k in trained[0] if k.startswith("gpt."))


def test_vqgan_resume_after_sigkill_matches(tmp_path, emoji_subset):
    steps = 16
    extra = ["trainer.checkpoint_every=3", "trainer.image_every=0", "trainer.val_every=0", "data.num_workers=2",
             "loss.disc_weight=0.5", "loss.disc_start=1", "loss.discriminator.n_layers=2", "loss.discriminator.ndf=8",
             "model.quantizer.kind=ema", "model.quantizer.restart_threshold=2.0", "model.quantizer.decay=0.5",
             "model.quantizer.kmeans_init=false"]
    straight = tmp_path / "straight"
    run(VQGAN_SCRIPT + tiny_vqgan_overrides(straight, emoji_subset, steps) + extra)
    broken = tmp_path / "broken"
    cmd = VQGAN_SCRIPT + tiny_vqgan_overrides(broken, emoji_subset, steps) + extra
    run_and_kill(cmd, broken, steps)
    run(cmd)
    a, b = weights(straight / "tokenizer"), weights(broken / "tokenizer")
    # Every source of randomness is restored, and CPU kernels are deterministic at a fixed
    # thread count, so the tokenizer comes back bit for bit as well.
    assert all(torch.equal(a[k], b[k]) for k in a)
    sa = torch.load(straight / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    sb = torch.load(broken / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)  # discriminator and quantizer buffers too
    assert sa["model.quantize.train_state.restarts"] > 0  # restarts (which draw random numbers) happened


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_writes_a_checkpoint_and_stops_cleanly(tmp_path, emoji_subset, tiny_tokenizer, signum):
    run_dir = tmp_path / "run"
    cmd = GPT_SCRIPT + tiny_gpt_overrides(run_dir, emoji_subset, tiny_tokenizer, 100000) + [
        # validation is on but never due: a stop must not run one (Lightning validates when a run ends early)
        "trainer.checkpoint_every=5", "trainer.image_every=0", "trainer.val_every=1000000"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    last = run_dir / "checkpoints" / "last.ckpt"
    while not last.exists() and proc.poll() is None:  # training, the signal handlers installed
        time.sleep(0.05)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    step = checkpoint_step(last)
    assert step > 5, "the checkpoint is batch 5's, not the stop's"
    assert proc.returncode != 0 and f"{signal.Signals(signum).name} received: stopped after training batch {step}," in err
    assert "resume" in err
    assert not (run_dir / "gpt").exists()  # an interrupted run is not exported
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    assert not [tag for tag in events.Tags()["scalars"] if tag.startswith("val")]
