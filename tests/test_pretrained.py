"""The pretrained tokenizers and GPTs shipped in data/pretrained/: emoji32 (8 x 8 codes) and
emoji32_f2 (16 x 16 codes)."""
import json

import pytest
import torch
from safetensors import safe_open

from tests.conftest import REPO
from transformer.evaluation import evaluation_set
from transformer.generator import load_generator
from transformer.sampling import sample_images
from vqgan.data import DataConfig
from vqgan.metrics import reconstruction_metrics

SHIPPED = [REPO / "data" / "pretrained" / name for name in ("emoji32", "emoji32_f2")]


@pytest.fixture(scope="module", params=SHIPPED, ids=lambda folder: folder.name)
def shipped(request):
    """(folder, GPT, tokenizer) of one shipped model, loaded into fp32."""
    return (request.param, *load_generator(request.param, "cpu", torch.float32))


def test_exports_load_and_fit_each_other(shipped):
    folder, gpt, tokenizer = shipped
    assert gpt.config.vocab_size == tokenizer.codebook_size and gpt.config.grid_size == tokenizer.config.grid_size
    assert gpt.config.num_classes == 9 and len(gpt.config.class_names) == 9
    for export in (folder, folder / "tokenizer"):
        with safe_open(str(export / "model.safetensors"), framework="pt") as f:
            dtypes = {f.get_slice(k).get_dtype() for k in f.keys()}
        assert dtypes <= {"F16", "I64"}, dtypes  # stored compactly


def test_sampling_is_deterministic_under_a_seed(shipped):
    _, gpt, tokenizer = shipped
    labels = torch.tensor([0, 4, 8])
    first = sample_images(gpt, tokenizer, labels, 3, batch_size=3, seed=0, cfg_scale=2.0)
    again = sample_images(gpt, tokenizer, labels, 3, batch_size=3, seed=0, cfg_scale=2.0)
    other = sample_images(gpt, tokenizer, labels, 3, batch_size=3, seed=1, cfg_scale=2.0)
    assert first.shape == (3, 3, 32, 32) and torch.equal(first, again) and not torch.equal(first, other)


def test_card_reconstruction_metrics_are_reproduced(shipped):
    """PSNR, SSIM and codebook usage of the card (metrics.json) on the same 379 validation images.
    LPIPS, rFID and gFID need the prepared weights and minutes: build_pretrained.sh recomputes them."""
    folder, _, tokenizer = shipped
    card_metrics = json.loads((folder / "metrics.json").read_text())
    data = DataConfig(root=str(REPO / "data" / "emoji"), resolution=32)
    measured = reconstruction_metrics(tokenizer, evaluation_set(data, "val"), lpips=None, progress=False)
    assert measured["num_images"] == card_metrics["num_images"] == 379
    for key in ("psnr", "ssim", "codebook_usage", "perplexity"):
        assert measured[key] == pytest.approx(card_metrics[key], rel=1e-3), key
