"""Faults: interrupted writes, a full disk, hostile checkpoints, NaN losses."""
import errno
import os
import pickle
import subprocess
import sys

import pytest
import torch
from PIL import Image

from tests.conftest import REPO, tiny_vqgan_overrides
from vqgan import VQGAN, VQGANConfig, losses
from vqgan.config import load_config
from vqgan.convert import ConversionError, convert_taming
from vqgan.data import DatasetError, load_rgb
from vqgan.io import atomic_path, atomic_write_text
from vqgan.lightning import NonFiniteLossError, fit_vqgan
from vqgan.quantize import QuantizerConfig
from vqgan.train_config import VQGANTrainConfig

CONFIG = REPO / "configs" / "vqgan" / "emoji32.yaml"


def test_interrupted_write_keeps_the_previous_file(tmp_path):
    target = tmp_path / "metrics.json"
    atomic_write_text(target, "good")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half a fi")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == "good" and os.listdir(tmp_path) == ["metrics.json"]


def test_failed_export_keeps_the_previous_export(tmp_path, monkeypatch):
    config = VQGANConfig(ch=16, norm_groups=8, num_res_blocks=1, z_channels=16, quantizer=QuantizerConfig(codebook_size=16))
    first = VQGAN(config)
    first.save_pretrained(tmp_path / "tok")
    import vqgan.model

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(vqgan.model, "save_file", full_disk)
    with pytest.raises(OSError, match="No space left"):
        VQGAN(config).save_pretrained(tmp_path / "tok")
    loaded = VQGAN.from_pretrained(tmp_path / "tok")
    assert all(torch.equal(first.state_dict()[k], v) for k, v in loaded.export_state_dict().items())
    assert sorted(os.listdir(tmp_path)) == ["tok"]  # no temporary folder left behind


class Payload:
    """Unpickling this would create a file: the proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_pickle_payloads_are_refused_without_running(tmp_path, emoji_subset):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "global_step": 0, "payload": Payload(marker)}, evil)
    # as a checkpoint to resume from
    cmd = [sys.executable, str(REPO / "scripts" / "train_vqgan.py"), "--config", str(CONFIG),
           *tiny_vqgan_overrides(tmp_path / "run", emoji_subset, steps=2), f"resume={evil}"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0 and "refusing checkpoint" in result.stderr
    # as a taming checkpoint to convert
    with pytest.raises(ConversionError, match="weights_only"):
        convert_taming(evil, REPO / "tests/fixtures/taming/vqgan_tiny_config.yaml")
    assert not marker.exists()
    with open(evil, "rb") as f:  # and the payload is real: a plain unpickler would have run it
        assert b"pwned" in f.read()


def test_nan_loss_stops_with_step_and_term_and_keeps_the_good_checkpoint(tmp_path, emoji_subset, monkeypatch):
    real = losses.reconstruction_loss
    calls = {"n": 0}

    def poisoned(x, x_hat, kind="l1"):
        value = real(x, x_hat, kind)
        if kind != "l1":
            return value
        calls["n"] += 1
        return value * float("nan") if calls["n"] > 2 else value  # training batches 0, 1 fine

    monkeypatch.setattr(losses, "reconstruction_loss", poisoned)
    run = tmp_path / "run"
    config = load_config(VQGANTrainConfig, CONFIG, tiny_vqgan_overrides(run, emoji_subset, steps=6) + [
        "trainer.checkpoint_every=2", "trainer.val_every=0", "trainer.image_every=0"])
    with pytest.raises(NonFiniteLossError, match=r"batch 2: rec"):
        fit_vqgan(config)
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 2
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point())
    assert not (run / "tokenizer").exists()


def test_full_disk_while_checkpointing_keeps_the_previous_checkpoint(tmp_path, emoji_subset, monkeypatch):
    run = tmp_path / "run"
    config = load_config(VQGANTrainConfig, CONFIG, tiny_vqgan_overrides(run, emoji_subset, steps=6) + [
        "trainer.checkpoint_every=2", "trainer.val_every=0", "trainer.image_every=0"])
    real_save = torch.save
    saves = {"n": 0}

    def failing_save(obj, f, *args, **kwargs):
        if isinstance(obj, dict) and "optimizer_states" in obj:
            saves["n"] += 1
            if saves["n"] > 1:
                raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError, match="No space left on device"):
        fit_vqgan(config)
    monkeypatch.setattr(torch, "save", real_save)
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 2


def test_truncated_jpeg_and_unreadable_files_name_the_path(tmp_path):
    Image.new("RGB", (64, 64), "blue").save(tmp_path / "ok.jpg", quality=90)
    data = (tmp_path / "ok.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 3])
    with pytest.raises(DatasetError, match="cut.jpg"):
        load_rgb(tmp_path / "cut.jpg")
    (tmp_path / "notes.png").write_bytes(pickle.dumps("not an image"))
    with pytest.raises(DatasetError, match="notes.png"):
        load_rgb(tmp_path / "notes.png")
