"""Loading exports: on the requested device, checked against config.json before any memory is
allocated, and refused when the weights are not usable numbers."""
import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from tests.test_vqgan_model import tiny_config
from transformer import GPT, GPTConfig
from transformer.generator import load_generator
from vqgan import VQGAN


@pytest.fixture()
def generator_dir(tmp_path):
    torch.manual_seed(0)
    VQGAN(tiny_config()).save_pretrained(tmp_path / "tok")
    gpt = GPT(GPTConfig(vocab_size=64, grid_size=8, num_classes=3, n_layer=1, n_head=2, n_embd=32))
    gpt.save_pretrained(tmp_path / "gpt", tokenizer_dir=tmp_path / "tok")
    return tmp_path / "gpt"


def test_models_are_built_on_the_requested_device(generator_dir):
    """"meta" stands in for a GPU here: nothing may be built on the CPU and moved afterwards."""
    gpt, tokenizer = load_generator(generator_dir, "meta")
    tensors = [*gpt.parameters(), *gpt.buffers(), *tokenizer.parameters(), *tokenizer.buffers()]
    assert {t.device.type for t in tensors} == {"meta"}
    assert gpt.device.type == "meta" and tokenizer.device.type == "meta"
    assert VQGAN.from_pretrained(generator_dir / "tokenizer").device.type == "cpu"


def test_huge_config_is_refused_before_allocating(generator_dir):
    tok = generator_dir / "tokenizer"
    config = json.loads((tok / "config.json").read_text())
    config["ch"] = 65536  # a few hundred GB if it were built before the check
    (tok / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="does not match .*shape of"):
        VQGAN.from_pretrained(tok)


@pytest.mark.parametrize("damage", ["nan", "int"])
def test_unusable_weights_are_refused(generator_dir, damage):
    path = generator_dir / "tokenizer" / "model.safetensors"
    state = load_file(str(path))
    key = "quantize.embedding.weight"
    state[key] = torch.full_like(state[key], float("nan")) if damage == "nan" else state[key].long()
    save_file(state, str(path))
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        VQGAN.from_pretrained(path.parent)


def test_half_precision_exports_load_into_fp32(generator_dir):
    path = generator_dir / "model.safetensors"
    state = {k: v.half() if v.is_floating_point() else v for k, v in load_file(str(path)).items()}
    save_file(state, str(path))
    gpt = GPT.from_pretrained(generator_dir)
    assert gpt.head.weight.dtype == torch.float32
    assert torch.equal(gpt.tok_emb.weight, state["tok_emb.weight"].float())
