"""Both stages under Lightning DDP with 2 CPU processes (gloo): the ranks stay identical, and a
run killed in the middle of an epoch resumes to the weights of one never interrupted, and a
signal to one rank stops them all after the same batch."""
import os
import signal
import subprocess
import time

import pytorch_lightning as pl
import torch
from safetensors.torch import load_file
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.conftest import GPT_SCRIPT, REPO, VQGAN_SCRIPT, tiny_gpt_overrides, tiny_vqgan_overrides
from vqgan.config import load_config
from vqgan.lightning import fit_vqgan
from vqgan.train_config import VQGANTrainConfig


class DumpRankState(pl.Callback):
    """Each rank writes its weights and buffers at the end, and the files it saw written."""

    def __init__(self, directory):
        self.directory = directory

    def on_train_end(self, trainer, pl_module):
        state = {k: v.detach().cpu() for k, v in pl_module.state_dict().items()}
        torch.save(state, f"{self.directory}/rank{trainer.global_rank}.pt")


def test_ddp_ranks_end_identical_and_only_rank0_writes(tmp_path, emoji_subset):
    run = tmp_path / "run"
    overrides = tiny_vqgan_overrides(run, emoji_subset, steps=6) + [
        "trainer.accelerator=cpu", "trainer.devices=2", "trainer.strategy=ddp_spawn", "data.num_workers=0",
        "trainer.image_every=3", "trainer.checkpoint_every=3", "trainer.val_every=3",
        "loss.disc_weight=0.5", "loss.disc_start=2", "loss.discriminator.n_layers=2", "loss.discriminator.ndf=8",
        "loss.discriminator.norm=group",
        "model.quantizer.kind=ema", "model.quantizer.restart_threshold=2.0", "model.quantizer.decay=0.5",
        "model.quantizer.kmeans_init=false",
    ]
    config = load_config(VQGANTrainConfig, REPO / "configs/vqgan/emoji32.yaml", overrides)
    fit_vqgan(config, callbacks=[DumpRankState(str(tmp_path))])
    a = torch.load(tmp_path / "rank0.pt", weights_only=True)
    b = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, different[:5]
    assert a["model.quantize.train_state.restarts"] > 0, "no dead-code restart: the test would prove little"
    # rank 0 alone writes: one grid per logging step, one export, one checkpoint
    assert sorted(p.name for p in (run / "images").iterdir()) == [
        "reconstructions_000003.png", "reconstructions_000006.png", "reconstructions_last.png"]
    assert (run / "tokenizer" / "model.safetensors").is_file()


DDP = ["trainer.accelerator=cpu", "trainer.devices=2", "trainer.strategy=ddp_spawn", "data.num_workers=0",
       "trainer.checkpoint_every=3", "trainer.image_every=0", "trainer.val_every=0"]


def kill_at_first_checkpoint_and_resume(command: list[str], run) -> None:
    """Run `command`, SIGKILL its whole process group (the spawned ranks too) once the first
    checkpoint exists, then run it again to the end."""
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    last = run / "checkpoints" / "last.ckpt"
    while not last.exists() and proc.poll() is None:
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 0 < torch.load(last, weights_only=True)["global_step"] < 6, "not interrupted mid-way"
    finish(command)


def finish(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]


def same_weights(a, b) -> bool:
    a, b = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_stage1_ddp_killed_mid_epoch_resumes_to_the_uninterrupted_weights(tmp_path, emoji_subset):
    """Two gloo ranks, the GAN started before the kill at batch 3 of a 4-batch epoch per rank."""
    gan = ["loss.disc_weight=0.5", "loss.disc_start=1", "loss.discriminator.n_layers=2", "loss.discriminator.ndf=8",
           "loss.discriminator.norm=group"]
    command = lambda run: VQGAN_SCRIPT + tiny_vqgan_overrides(run, emoji_subset, steps=6) + DDP + gan  # noqa: E731
    finish(command(tmp_path / "straight"))
    kill_at_first_checkpoint_and_resume(command(tmp_path / "broken"), tmp_path / "broken")
    assert same_weights(tmp_path / "straight" / "tokenizer", tmp_path / "broken" / "tokenizer")


def test_stage2_ddp_killed_mid_epoch_resumes_to_the_uninterrupted_weights(tmp_path, emoji_subset, tiny_tokenizer):
    # validation too: its loss per class is summed over both ranks and logged by rank 0 alone;
    # the export is the moving average of the weights, kept on each rank
    command = lambda run: (GPT_SCRIPT + tiny_gpt_overrides(run, emoji_subset, tiny_tokenizer, steps=6) + DDP  # noqa: E731
                           + ["trainer.val_every=3", "ema_decay=0.9"])
    finish(command(tmp_path / "straight"))
    kill_at_first_checkpoint_and_resume(command(tmp_path / "broken"), tmp_path / "broken")
    assert same_weights(tmp_path / "straight" / "gpt", tmp_path / "broken" / "gpt")
    events = EventAccumulator(str(tmp_path / "straight" / "tensorboard"))
    events.Reload()
    assert [e.step for e in events.Scalars("val_by_class/flags")] == [e.step for e in events.Scalars("val/loss")]


def test_a_signal_to_rank0_alone_stops_both_ranks_after_the_same_batch(tmp_path, emoji_subset, tiny_tokenizer):
    """A signal that reaches one rank only (here the launching process, rank 0) must not leave the
    other training on: rank 0 writing the checkpoint while rank 1 trains would hang both."""
    run = tmp_path / "run"
    command = (GPT_SCRIPT + tiny_gpt_overrides(run, emoji_subset, tiny_tokenizer, steps=100000)
               + ["trainer.accelerator=cpu", "trainer.devices=2", "trainer.strategy=ddp", "data.num_workers=0",
                  "trainer.checkpoint_every=5", "trainer.image_every=0", "trainer.val_every=0"])
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    last = run / "checkpoints" / "last.ckpt"
    try:
        while not last.exists() and proc.poll() is None:  # both ranks are training
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # rank 1 too, whatever happened
    step = torch.load(last, weights_only=True)["global_step"]
    assert proc.returncode != 0 and step >= 5, err[-3000:]
    for rank_message in ("SIGTERM received", "a signal to another rank received"):  # rank 0's, rank 1's
        assert f"{rank_message}: stopped after training batch {step}," in err, err[-3000:]
