"""Image-conditional generation: derived and paired condition images, the condition prefix, its
code cache, guidance with a null prefix, and the checks that refuse what does not fit."""
from pathlib import Path
import json
import subprocess
import sys

import pytest
import torch
from PIL import Image

from tests.conftest import REPO, tiny_gpt_overrides
from transformer import codes as code_cache
from transformer import generate
from transformer.generator import load_condition_tokenizer, load_generator
from transformer.pairing import TokenizerMismatchError
from transformer.lightning import fit_gpt
from transformer.model import GPT, GPTConfig
from transformer.train_config import GPTTrainConfig
from vqgan.condition_images import derive, paired_index, silhouette_iou
from vqgan.config import load_config
from vqgan.data import DatasetError, scan_images

CONFIG = "configs/transformer/emoji32.yaml"


def image_conditional_gpt() -> GPT:
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=32, grid_size=4, n_layer=2, n_head=2, n_embd=32, cond_vocab_size=16,
                          cond_grid_size=2)).eval()
    torch.nn.init.normal_(model.head.weight, std=0.5)
    return model


def test_derived_conditions_commute_with_a_flip():
    torch.manual_seed(0)
    image = torch.rand(2, 3, 16, 16) * 2 - 1
    image[:, :, :4] = 1.0  # a white band of background
    for name in ("silhouette", "grayscale", "lowres"):
        cond = derive(name, image)
        assert cond.shape == image.shape and cond.min() >= -1 and cond.max() <= 1
        assert torch.allclose(derive(name, image.flip(-1)), cond.flip(-1)), name
    silhouette = derive("silhouette", image)
    assert (silhouette[:, :, :4] == 1).all() and silhouette_iou(silhouette, image).min() == 1.0
    assert torch.equal(derive("silhouette", silhouette), silhouette)  # a silhouette is its own silhouette


def test_the_condition_prefix_reaches_the_logits_and_the_cache_prefills_it():
    model = image_conditional_gpt()
    codes = torch.randint(0, 32, (2, 16))
    a, b = torch.randint(0, 16, (2, 2, 2)), torch.randint(0, 16, (2, 2, 2))
    assert not torch.allclose(model(model.condition_tokens(a), codes), model(model.condition_tokens(b), codes))
    # the static KV cache (prefix prefilled in one pass) samples what recomputing every step samples
    cached = generate(model, a, cfg_scale=2.0, generator=torch.Generator().manual_seed(0))
    plain = generate(model, a, cfg_scale=2.0, use_cache=False, generator=torch.Generator().manual_seed(0))
    assert torch.equal(cached, plain)
    with pytest.raises(ValueError, match=r"condition codes must be \(B, 2, 2\)"):
        model.condition_tokens(torch.zeros(2, 9, dtype=torch.long))


def test_a_paired_folder_with_a_missing_partner_names_it(tmp_path, emoji_subset):
    paired = tmp_path / "edges"
    index = scan_images(emoji_subset, progress=False)
    for path in index.paths[1:]:  # every partner but the first, as .jpg
        target = paired / Path(path).relative_to(emoji_subset)
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.open(path).convert("RGB").save(target.with_suffix(".jpg"))
    with pytest.raises(DatasetError, match=index.paths[0].split("/")[-1].removesuffix(".png")):
        paired_index(index, emoji_subset, paired)
    first = paired / Path(index.paths[0]).relative_to(emoji_subset)
    Image.open(index.paths[0]).convert("RGB").save(first.with_suffix(".webp"))
    assert paired_index(index, emoji_subset, paired).paths[0] == str(first.with_suffix(".webp"))


def image_overrides(run, emoji_subset, tiny_tokenizer, *extra):
    return tiny_gpt_overrides(run, emoji_subset, tiny_tokenizer, steps=2) + [
        "condition.source=image", f"condition.tokenizer={tiny_tokenizer}", "condition.derive=silhouette", *extra]


def test_image_conditional_training_cache_and_export(tmp_path, emoji_subset, tiny_tokenizer):
    export = fit_gpt(load_config(GPTTrainConfig, CONFIG, image_overrides(tmp_path / "run", emoji_subset,
                                                                         tiny_tokenizer)))
    gpt, tokenizer = load_generator(export)
    c = gpt.config
    assert (c.cond_vocab_size, c.cond_grid_size, c.condition_derive, c.num_classes) == (64, 8, "silhouette", 0)
    assert load_condition_tokenizer(export) is not None
    caches = sorted((tmp_path / "run" / "codes").glob("codes-*.safetensors"))
    assert len(caches) == 1
    cache = code_cache.load_or_build(tokenizer, tiny_tokenizer, scan_images(emoji_subset, progress=False), 32,
                                     tmp_path / "run" / "codes")
    assert cache.cond_codes is None  # the class-only key is another cache
    # the same run again reuses the cache; another transform makes a new one
    fit_gpt(load_config(GPTTrainConfig, CONFIG, image_overrides(tmp_path / "run", emoji_subset, tiny_tokenizer,
                                                                "trainer.max_steps=3")))
    assert len(sorted((tmp_path / "run" / "codes").glob("codes-*.safetensors"))) == 2  # + the class-only one
    fit_gpt(load_config(GPTTrainConfig, CONFIG, image_overrides(tmp_path / "run2", emoji_subset, tiny_tokenizer,
                                                                "condition.derive=grayscale")))
    assert (tmp_path / "run2" / "images" / "samples_last.png").is_file()

    out = tmp_path / "cond.png"
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "sample.py"), "--model", str(export),
                             "--condition-images", str(emoji_subset / "flags"), "--num", "6", "--out", str(out)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    conditions = len(list((emoji_subset / "flags").iterdir()))
    per_row = -(-6 // conditions)
    assert Image.open(out).size == ((per_row + 1) * 34 + 2, conditions * 34 + 2)  # the condition, then its samples
    rows = json.loads(out.with_suffix(".json").read_text())["rows"]
    assert len(rows) == conditions and rows[0]["condition"].endswith(".png")


@pytest.mark.parametrize("extra, error, message", [
    (["model.cond_grid_size=3"], TokenizerMismatchError, r"model.cond_grid_size=3 but the conditioning tokenizer"),
    (["model.num_classes=3"], ValueError, "takes no classes"),
])
def test_a_condition_that_does_not_fit_is_refused(tmp_path, emoji_subset, tiny_tokenizer, extra, error, message):
    with pytest.raises(error, match=message):
        fit_gpt(load_config(GPTTrainConfig, CONFIG, image_overrides(tmp_path / "run", emoji_subset, tiny_tokenizer,
                                                                    *extra)))
    assert not (tmp_path / "run").exists()
