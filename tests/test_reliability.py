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
from transformer import GPT, GPTConfig
from vqgan.io import ExportTargetError, atomic_path, atomic_write_text
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
    import vqgan.export

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(vqgan.export, "save_file", full_disk)
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


def test_an_export_never_replaces_what_is_not_an_earlier_export(tmp_path):
    config = VQGANConfig(ch=16, norm_groups=8, num_res_blocks=1, z_channels=16, quantizer=QuantizerConfig(codebook_size=16))
    user_folder = tmp_path / "my_images"
    user_folder.mkdir()
    (user_folder / "cat.png").write_bytes(b"precious")
    with pytest.raises(ExportTargetError, match="not an export folder"):
        VQGAN(config).save_pretrained(user_folder)
    assert (user_folder / "cat.png").read_bytes() == b"precious"
    (tmp_path / "a_file").write_text("mine")
    with pytest.raises(ExportTargetError):
        VQGAN(config).save_pretrained(tmp_path / "a_file")
    assert (tmp_path / "a_file").read_text() == "mine"

    VQGAN(config).save_pretrained(tmp_path / "tok")  # new, then replaced: both fine
    VQGAN(config).save_pretrained(tmp_path / "tok")
    gpt = GPT(GPTConfig(vocab_size=16, grid_size=8, n_layer=1, n_head=2, n_embd=16))
    with pytest.raises(ExportTargetError, match="a tokenizer export"):
        gpt.save_pretrained(tmp_path / "tok")
    assert VQGAN.from_pretrained(tmp_path / "tok").codebook_size == 16


def test_train_script_refuses_a_bad_export_dir_before_training(tmp_path, emoji_subset):
    run = tmp_path / "run"
    cmd = [sys.executable, str(REPO / "scripts" / "train_vqgan.py"), "--config",
           str(REPO / "configs" / "vqgan" / "emoji32.yaml"), *tiny_vqgan_overrides(run, emoji_subset),
           f"export_dir={emoji_subset}"]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode != 0 and "refusing to write the tokenizer export" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (run / "checkpoints").exists()
    assert len(list(emoji_subset.rglob("*.png"))) == 72


def _export_repeatedly(directory: str, seed: int) -> None:
    torch.manual_seed(seed)
    config = VQGANConfig(ch=16, norm_groups=8, num_res_blocks=1, z_channels=16, quantizer=QuantizerConfig(codebook_size=16))
    for _ in range(15):
        VQGAN(config).save_pretrained(directory)


def test_concurrent_exports_take_turns(tmp_path):
    import multiprocessing

    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_export_repeatedly, args=(str(tmp_path / "tok"), s)) for s in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    assert [w.exitcode for w in workers] == [0, 0, 0]
    assert sorted(os.listdir(tmp_path)) == ["tok"]  # no temporary folder left behind
    VQGAN.from_pretrained(tmp_path / "tok")


def test_outputs_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "m.json", "{}")
        VQGAN(VQGANConfig(ch=16, norm_groups=8, num_res_blocks=1, z_channels=16,
                          quantizer=QuantizerConfig(codebook_size=16))).save_pretrained(tmp_path / "tok")
    finally:
        os.umask(old)
    assert (tmp_path / "m.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "tok").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "tok" / "model.safetensors").stat().st_mode & 0o777 == 0o644


def test_checkpoints_are_written_beside_their_target_whatever_tmpdir_is(tmp_path, emoji_subset, monkeypatch):
    """A temporary file in $TMPDIR is renamed across filesystems on many clusters: a copy, which
    a kill truncates. Every temporary file must be made in the folder of its target."""
    import tempfile

    made_in = []
    real_mkstemp = tempfile.mkstemp

    def recording_mkstemp(*args, **kwargs):
        made_in.append(kwargs.get("dir"))
        return real_mkstemp(*args, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", recording_mkstemp)
    run = tmp_path / "run"
    config = load_config(VQGANTrainConfig, CONFIG, tiny_vqgan_overrides(run, emoji_subset, steps=2) + [
        "trainer.val_every=0", "trainer.image_every=0"])
    fit_vqgan(config)
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 2
    assert os.listdir(run / "checkpoints") == ["last.ckpt"]
    assert made_in and None not in made_in, made_in
