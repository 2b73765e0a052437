"""scripts/pack_pretrained.py: the fp16 pack, and swapping in a decoder fine-tune of the tokenizer."""
import subprocess
import sys

import torch

from tests.conftest import REPO
from vqgan import VQGAN

SHIPPED = REPO / "data" / "pretrained" / "emoji32"
SCRIPT = REPO / "scripts" / "pack_pretrained.py"


def _tokenizer_with_changed(parameter: str, folder):
    """The shipped tokenizer with one weight tensor changed, exported to `folder`."""
    tokenizer = VQGAN.from_pretrained(SHIPPED / "tokenizer")
    with torch.no_grad():
        tokenizer.get_parameter(parameter).add_(0.5)
    tokenizer.save_pretrained(folder)
    return tokenizer


def _pack(out, tokenizer) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), str(SHIPPED), str(out), "--tokenizer", str(tokenizer)],
                          capture_output=True, text=True, cwd=REPO, timeout=300)


def test_pack_swaps_in_a_tokenizer_with_the_same_codes(tmp_path):
    tuned = _tokenizer_with_changed("decoder.conv_out.weight", tmp_path / "tuned")
    out = tmp_path / "packed"
    result = _pack(out, tmp_path / "tuned")
    assert result.returncode == 0, result.stderr[-2000:]
    packed = VQGAN.from_pretrained(out / "tokenizer")
    assert packed.decoder.conv_out.weight.dtype == torch.float32  # loads into fp32 from the fp16 file
    assert torch.equal(packed.decoder.conv_out.weight, tuned.decoder.conv_out.weight.half().float())
    assert not torch.equal(packed.decoder.conv_out.weight, VQGAN.from_pretrained(SHIPPED / "tokenizer").decoder.conv_out.weight)
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()


def test_pack_refuses_a_tokenizer_with_other_codes(tmp_path):
    _tokenizer_with_changed("encoder.conv_in.weight", tmp_path / "other")
    out = tmp_path / "packed"
    result = _pack(out, tmp_path / "other")
    assert result.returncode != 0
    assert "other codes" in result.stderr and "encoder.conv_in.weight" in result.stderr
    assert not out.exists()  # nothing written
