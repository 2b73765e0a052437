"""MaskGIT: the masking schedule, the masked-only loss, the parallel sampler, the export."""
import json
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from tests.conftest import tiny_gpt_overrides
from transformer.generator import load_generator, load_stage2
from transformer.lightning import fit_gpt
from transformer.maskgit import MaskGIT, mask_ratio, random_mask
from transformer.maskgit_sampling import generate_masked, masked_after_step
from transformer.model import GPT, GPTConfig
from transformer.train_config import GPTTrainConfig
from vqgan.config import load_config

CONFIG = "configs/transformer/emoji32.yaml"


def tiny_maskgit(num_classes: int = 3, grid: int = 4, seed: int = 0) -> MaskGIT:
    torch.manual_seed(seed)
    model = MaskGIT(GPTConfig(kind="maskgit", vocab_size=32, grid_size=grid, num_classes=num_classes,
                              n_layer=2, n_head=2, n_embd=32)).eval()
    torch.nn.init.normal_(model.head.weight, std=0.5)  # not the uniform start: logits that differ
    return model


def test_schedule_extremes():
    assert mask_ratio(torch.tensor(0.0)).item() == pytest.approx(1.0)
    assert mask_ratio(torch.tensor(1.0)).item() == pytest.approx(0.0, abs=1e-6)
    assert masked_after_step(11, 12, 64, "cosine") == 0  # the last step leaves nothing masked
    assert masked_after_step(0, 12, 64, "cosine") == 63  # cos(pi/24) * 64 = 63.5
    assert [masked_after_step(s, 4, 4, "linear") for s in range(4)] == [3, 2, 1, 0]
    masks = random_mask(4000, 16, "cpu", torch.Generator().manual_seed(0))
    counts = masks.sum(dim=1)
    assert counts.min() == 1 and counts.max() == 16  # at least one, sometimes all
    # the mean masked count is E[ceil(16 cos(pi/2 r))], r ~ U(0, 1) (about 16 * 2/pi + 1/2)
    r = (torch.arange(100_000) + 0.5) / 100_000
    expected = (16 * torch.cos(r * torch.pi / 2)).ceil().clamp(1, 16).mean().item()
    assert counts.float().mean().item() == pytest.approx(expected, abs=0.2)


def test_loss_counts_masked_positions_only():
    model = tiny_maskgit().train(False)
    codes = torch.randint(0, 32, (6, 16), generator=torch.Generator().manual_seed(1))
    prefix = model.condition_tokens(torch.tensor([0, 1, 2, 0, 1, 2]))
    loss = model.loss(prefix, codes, generator=torch.Generator().manual_seed(5))
    masked = random_mask(6, 16, "cpu", torch.Generator().manual_seed(5))
    logits = model(prefix, codes.masked_fill(masked, model.config.mask_id))
    assert loss.item() == pytest.approx(F.cross_entropy(logits[masked], codes[masked]).item(), rel=1e-5)
    everywhere = F.cross_entropy(logits.flatten(0, 1), codes.flatten()).item()
    assert loss.item() != pytest.approx(everywhere, rel=1e-3)
    # label smoothing: (1 - e) * cross-entropy + e * the mean of -log p over the codes, masked positions only
    smoothed = model.loss(prefix, codes, label_smoothing=0.1, generator=torch.Generator().manual_seed(5))
    log_p = logits[masked].log_softmax(-1)
    expected = 0.9 * F.nll_loss(log_p, codes[masked]) - 0.1 * log_p.mean(-1).mean()
    assert smoothed.item() == pytest.approx(expected.item(), rel=1e-5) and smoothed.item() != pytest.approx(loss.item())


def test_bidirectional_a_later_code_changes_an_earlier_prediction():
    model = tiny_maskgit()
    tokens = torch.full((1, 16), model.config.mask_id)
    prefix = model.condition_tokens(torch.tensor([0]))
    before = model(prefix, tokens)[0, 0]
    tokens[0, 15] = 3
    assert not torch.allclose(before, model(prefix, tokens)[0, 0])


def test_sampler_fills_every_position_once_with_codes_only():
    model = tiny_maskgit()
    masked_inputs = []
    forward = model.forward

    def recording(prefix, tokens):
        masked_inputs.append(int((tokens == model.config.mask_id).sum()))
        return forward(prefix, tokens)

    model.forward = recording
    codes = generate_masked(model, torch.tensor([1]), steps=16, schedule="linear",
                            generator=torch.Generator().manual_seed(0))
    assert masked_inputs == list(range(16, 0, -1))  # one code kept per step, none re-masked
    assert codes.shape == (1, 16) and codes.min() >= 0 and codes.max() < 32  # no [MASK], no condition id
    many = generate_masked(tiny_maskgit(), torch.tensor([0, 1, 2] * 4), steps=5, cfg_scale=3.0, top_k=8,
                           generator=torch.Generator().manual_seed(0))
    assert many.min() >= 0 and many.max() < 32


def test_sampler_is_deterministic_under_a_seed():
    model = tiny_maskgit()
    labels = torch.tensor([0, 1, 2, 2])
    run = lambda seed: generate_masked(model, labels, steps=6, cfg_scale=2.0, top_p=0.9,  # noqa: E731
                                       generator=torch.Generator().manual_seed(seed))
    assert torch.equal(run(3), run(3))
    assert not torch.equal(run(3), run(4))


def test_guidance_scale_one_is_plain_conditional_sampling():
    model = tiny_maskgit()
    labels = torch.tensor([0, 1, 2, 1])
    guided = generate_masked(model, labels, steps=6, cfg_scale=1.0, generator=torch.Generator().manual_seed(0))
    plain = generate_masked(model, labels, steps=6, cfg_scale=None, generator=torch.Generator().manual_seed(0))
    strong = generate_masked(model, labels, steps=6, cfg_scale=4.0, generator=torch.Generator().manual_seed(0))
    assert torch.equal(guided, plain)
    assert not torch.equal(strong, plain)


def test_export_round_trip_says_its_kind(tmp_path):
    model = tiny_maskgit()
    model.save_pretrained(tmp_path / "m")
    loaded = load_stage2(tmp_path / "m")
    assert isinstance(loaded, MaskGIT) and loaded.config == model.config
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match="model.kind=gpt, got 'maskgit'"):
        GPT.from_pretrained(tmp_path / "m")


def test_maskgit_trains_exports_and_samples(tmp_path, emoji_subset, tiny_tokenizer):
    overrides = tiny_gpt_overrides(tmp_path / "run", emoji_subset, tiny_tokenizer) + ["model.kind=maskgit",
                                                                                      "sample.steps=3"]
    export = fit_gpt(load_config(GPTTrainConfig, CONFIG, overrides))
    model, tokenizer = load_generator(export)
    assert isinstance(model, MaskGIT) and model.config.kind == "maskgit"
    assert (tmp_path / "run" / "images" / "samples_last.png").is_file()
    from transformer.sampling import sample_images

    images = sample_images(model, tokenizer, torch.tensor([0, 1]), 2, 2, steps=3)
    assert images.shape == (2, 3, 32, 32)
    out = tmp_path / "grid.png"  # the sampling script loads it without being told its kind
    result = subprocess.run([sys.executable, "scripts/sample.py", "--model", str(export), "--num", "3",
                             "steps=4", "choice_temperature=9", "--out", str(out)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["steps"] == 4 and record["choice_temperature"] == 9
    # the knob reaches the sampler: without the annealed noise the kept codes differ
    options = dict(cfg_scale=2.0, steps=4, generator=torch.Generator().manual_seed(0))
    noisy = generate_masked(model, torch.tensor([0, 1] * 4), choice_temperature=9.0, **options)
    options["generator"] = torch.Generator().manual_seed(0)
    assert not torch.equal(noisy, generate_masked(model, torch.tensor([0, 1] * 4), choice_temperature=0.0, **options))
