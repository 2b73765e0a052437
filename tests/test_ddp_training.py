"""Stage 1 under Lightning DDP with 2 CPU processes (gloo): the ranks stay identical."""
import pytorch_lightning as pl
import torch

from tests.conftest import REPO, tiny_vqgan_overrides
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
