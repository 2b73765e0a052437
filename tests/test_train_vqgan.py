import subprocess
import sys

import pytest
import torch
import yaml

from tests.conftest import REPO, tiny_vqgan_overrides
from vqgan import VQGAN
from vqgan.config import load_config
from vqgan.data import load_rgb
from vqgan.data import image_transform
from vqgan.config import ConfigError
from vqgan.lightning import fit_vqgan, init_from_export
from vqgan.train_config import VQGANTrainConfig

CONFIG = REPO / "configs" / "vqgan" / "emoji32.yaml"


def test_gan_training_steps_update_both_networks(tmp_path, emoji_subset):
    overrides = tiny_vqgan_overrides(tmp_path / "run", emoji_subset, steps=4) + [
        "loss.disc_weight=0.5", "loss.disc_start=1", "loss.disc_ramp=2", "loss.lecam_weight=0.1",
        "loss.discriminator.n_layers=2", "loss.discriminator.ndf=8", "loss.l2_weight=1.0",
    ]
    config = load_config(VQGANTrainConfig, CONFIG, overrides)
    tokenizer = fit_vqgan(config)
    run = tmp_path / "run"
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 4  # one per training batch, although D stepped too
    disc_keys = [k for k in ckpt["state_dict"] if k.startswith("discriminator.")]
    assert disc_keys and len(ckpt["optimizer_states"]) == 2
    assert ckpt["optimizer_states"][1]["state"], "the discriminator's optimizer never stepped"
    assert (run / "images" / "reconstructions_last.png").is_file()
    assert sorted(yaml.safe_load((run / "config.yaml").read_text())) == sorted(
        ["run_dir", "resume", "fresh", "export_dir", "init_from", "decoder_only", "seed", "model", "loss", "optim", "data", "trainer"])
    assert (tokenizer / "model.safetensors").is_file()


def test_training_script_end_to_end_and_reuse(tmp_path, emoji_subset):
    run = tmp_path / "run"
    cmd = [sys.executable, str(REPO / "scripts" / "train_vqgan.py"), "--config", str(CONFIG),
           *tiny_vqgan_overrides(run, emoji_subset, steps=3)]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    tok = VQGAN.from_pretrained(run / "tokenizer")
    images = sorted(emoji_subset.rglob("*.png"))[:5]
    x = torch.stack([image_transform(32, train=False)(load_rgb(p)) for p in images])
    codes = tok.encode(x)
    assert codes.shape == (5, 8, 8) and codes.dtype == torch.int64
    assert tok.decode(codes).shape == (5, 3, 32, 32)

    # a rerun with more steps resumes from last.ckpt instead of starting over
    rerun = [sys.executable, str(REPO / "scripts" / "train_vqgan.py"), "--config", str(CONFIG),
             *tiny_vqgan_overrides(run, emoji_subset, steps=5)]
    result = subprocess.run(rerun, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Restored" in result.stderr + result.stdout
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 5


def test_init_from_fine_tunes_an_exported_tokenizer(tmp_path, emoji_subset):
    first = load_config(VQGANTrainConfig, CONFIG, tiny_vqgan_overrides(tmp_path / "first", emoji_subset, steps=3))
    exported = VQGAN.from_pretrained(fit_vqgan(first))
    x = torch.stack([image_transform(32, train=False)(load_rgb(p)) for p in sorted(emoji_subset.rglob("*.png"))[:8]])

    model = VQGAN(first.model)
    init_from_export(model, tmp_path / "first" / "tokenizer")
    for key, value in exported.export_state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    # a training pass moves the EMA codebook a little from the loaded one (no k-means restart)
    codebook = exported.quantize.embedding.weight
    model.train()(x)
    drift = (model.quantize.embedding.weight - codebook).abs().max() / codebook.abs().max()
    assert 0 < drift < 0.1

    # a new run starting there: with a vanishing learning rate it exports the same decoder
    second = load_config(VQGANTrainConfig, CONFIG, tiny_vqgan_overrides(tmp_path / "second", emoji_subset, steps=2)
                         + [f"init_from={tmp_path / 'first' / 'tokenizer'}", "optim.lr=1e-12"])
    tuned = VQGAN.from_pretrained(fit_vqgan(second))
    for key, value in exported.decoder.state_dict().items():
        assert torch.allclose(tuned.decoder.state_dict()[key], value, atol=1e-6), key

    other = VQGAN(load_config(VQGANTrainConfig, CONFIG, tiny_vqgan_overrides(
        tmp_path / "x", emoji_subset) + ["model.quantizer.codebook_size=32"]).model)
    with pytest.raises(ConfigError, match="model.quantizer.codebook_size: 64 there, 32 here"):
        init_from_export(other, tmp_path / "first" / "tokenizer")


def test_decoder_only_training_keeps_the_codes(tmp_path, emoji_subset):
    first = load_config(VQGANTrainConfig, CONFIG, tiny_vqgan_overrides(tmp_path / "first", emoji_subset, steps=3))
    before = VQGAN.from_pretrained(fit_vqgan(first))
    # a GAN fine-tune of the decoder alone, at a learning rate that visibly moves it
    second = load_config(VQGANTrainConfig, CONFIG, tiny_vqgan_overrides(tmp_path / "second", emoji_subset, steps=3)
                         + [f"init_from={tmp_path / 'first' / 'tokenizer'}", "decoder_only=true", "optim.lr=1e-2",
                            "loss.disc_weight=0.5", "loss.disc_start=1", "loss.discriminator.n_layers=2",
                            "loss.discriminator.ndf=8"])
    after = VQGAN.from_pretrained(fit_vqgan(second))
    code_weights = after.code_weights()
    assert "quantize.embedding.weight" in code_weights and not any(k.startswith("decoder.") for k in code_weights)
    for key, value in before.code_weights().items():
        assert torch.equal(code_weights[key], value), key
    decoder_before = before.decoder.state_dict()
    assert any(not torch.equal(v, decoder_before[k]) for k, v in after.decoder.state_dict().items())
    x = torch.stack([image_transform(32, train=False)(load_rgb(p)) for p in sorted(emoji_subset.rglob("*.png"))[:8]])
    assert torch.equal(after.encode(x), before.encode(x))

    with pytest.raises(ConfigError, match="decoder_only.*init_from"):
        load_config(VQGANTrainConfig, CONFIG, ["decoder_only=true"])


def test_training_script_help_and_bad_key():
    script = str(REPO / "scripts" / "train_vqgan.py")
    assert "key=value" in subprocess.run([sys.executable, script, "--help"], capture_output=True, text=True).stdout
    result = subprocess.run([sys.executable, script, "--config", str(CONFIG), "trainer.max_stepz=3"],
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode != 0 and "trainer.max_stepz" in result.stderr
