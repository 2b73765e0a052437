"""taming-transformers checkpoints reproduce taming's own outputs (fixture: tests/fixtures/taming)."""
import re
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import REPO
from vqgan import VQGAN
from vqgan.convert import ConversionError, convert_taming, read_state_dict

FIXTURE = REPO / "tests" / "fixtures" / "taming"


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


@pytest.fixture(scope="module")
def vq(tmp_path_factory):
    out = tmp_path_factory.mktemp("vq") / "tokenizer"
    convert_taming(FIXTURE / "vqgan_tiny.ckpt", FIXTURE / "vqgan_tiny_config.yaml", out)
    return VQGAN.from_pretrained(out)


@pytest.fixture(scope="module")
def gumbel(tmp_path_factory):
    out = tmp_path_factory.mktemp("gumbel") / "tokenizer"
    convert_taming(FIXTURE / "gumbel_tiny.ckpt", FIXTURE / "gumbel_tiny_config.yaml", out)
    return VQGAN.from_pretrained(out)


def test_vqgan_reproduces_taming(vq):
    io = load_file(str(FIXTURE / "io_tiny.safetensors"))
    x = io["x"]
    assert vq.config.quantizer.kind == "classic"
    assert torch.equal(vq.encode(x), io["indices"])
    with torch.no_grad():
        enc = vq.encoder(x)
        h = vq.quant_conv(enc)
        out = vq.quantize(h)
    assert max_diff(enc, io["enc"]) < 1e-5 * 3.3 * 10
    assert max_diff(h, io["h"]) < 1e-5
    assert max_diff(out.z_q, io["quant"]) < 1e-5
    # taming's loss value is (1 + beta) * mean((e - z)^2) whichever term carries beta
    assert out.loss.item() == pytest.approx(io["emb_loss"].item(), rel=1e-5)
    assert max_diff(vq.decode(io["indices"]), io["dec"]) < 1e-4


def test_gumbel_reproduces_taming(gumbel):
    io = load_file(str(FIXTURE / "io_gumbel_tiny.safetensors"))
    x = io["x"]
    assert gumbel.config.quantizer.kind == "gumbel"
    with torch.no_grad():
        h = gumbel.quant_conv(gumbel.encoder(x))
        logits = gumbel.quantize.proj(h)
        out = gumbel.quantize(h)
    assert max_diff(h, io["h"]) < 1e-5 * 2.7 * 10
    assert max_diff(logits, io["logits"]) < 1.2e-4
    assert torch.equal(gumbel.encode(x), io["indices"])
    assert max_diff(gumbel.quantize.lookup(io["indices"]), io["quant"]) < 1e-5
    assert out.loss.item() == pytest.approx(io["kl_loss"].item(), rel=1e-5)
    assert max_diff(gumbel.decode(io["indices"]), io["dec"]) < 1e-4


def test_gumbel_eval_noise_matches_taming_sampling_path(gumbel):
    io = load_file(str(FIXTURE / "io_gumbel_tiny.safetensors"))
    gumbel.quantize.config.eval_noise = True
    try:
        torch.manual_seed(0)
        with torch.no_grad():
            out = gumbel.quantize(io["h"])
    finally:
        gumbel.quantize.config.eval_noise = False
    assert torch.equal(out.indices, io["indices_sampled_seed0"])
    assert max_diff(out.z_q, io["quant_sampled_seed0"]) < 1e-5


def test_every_model_tensor_is_copied_unchanged(vq):
    source = {k: v for k, v in read_state_dict(FIXTURE / "vqgan_tiny.ckpt").items() if not k.startswith("loss.")}
    ours = vq.export_state_dict()
    assert set(ours) == set(source) and len(source) == 183
    assert all(torch.equal(ours[k], source[k]) for k in source)


def test_safetensors_input_gives_the_same_model(tmp_path):
    a = convert_taming(FIXTURE / "vqgan_tiny.ckpt", FIXTURE / "vqgan_tiny_config.yaml")
    b = convert_taming(FIXTURE / "vqgan_tiny.safetensors", FIXTURE / "vqgan_tiny_config.yaml")
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.export_state_dict())


def test_unknown_and_missing_keys_are_named(tmp_path):
    state = read_state_dict(FIXTURE / "vqgan_tiny.ckpt")
    extra = dict(state, **{"encoder.extra_layer.weight": torch.zeros(1)})
    torch.save({"state_dict": extra}, tmp_path / "extra.ckpt")
    with pytest.raises(ConversionError, match="encoder.extra_layer.weight"):
        convert_taming(tmp_path / "extra.ckpt", FIXTURE / "vqgan_tiny_config.yaml")
    missing = {k: v for k, v in state.items() if k != "decoder.conv_out.bias"}
    torch.save({"state_dict": missing}, tmp_path / "missing.ckpt")
    with pytest.raises(ConversionError, match="decoder.conv_out.bias"):
        convert_taming(tmp_path / "missing.ckpt", FIXTURE / "vqgan_tiny_config.yaml")


def test_convert_script(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "convert_taming.py"),
                             str(FIXTURE / "gumbel_tiny.ckpt"), str(FIXTURE / "gumbel_tiny_config.yaml"),
                             str(tmp_path / "tok")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert VQGAN.from_pretrained(tmp_path / "tok").codebook_size == 64


def test_random_bytes_and_badly_typed_configs_are_conversion_errors(tmp_path):
    (tmp_path / "noise.safetensors").write_bytes(bytes(range(256)) * 20)
    with pytest.raises(ConversionError, match="not a readable safetensors"):
        convert_taming(tmp_path / "noise.safetensors", FIXTURE / "vqgan_tiny_config.yaml")
    text = (FIXTURE / "vqgan_tiny_config.yaml").read_text()
    (tmp_path / "typed.yaml").write_text(re.sub(r"\bch: \d+", "ch: abc", text, count=1))
    with pytest.raises(ConversionError, match="typed.yaml"):
        convert_taming(FIXTURE / "vqgan_tiny.ckpt", tmp_path / "typed.yaml")
