"""Sliding-window sampling past the training grid."""
import pytest
import torch

from transformer import generate
from transformer.model import GPT, GPTConfig
from transformer.sliding_window import generate_sliding, window_start


def tiny_gpt(num_classes: int = 3) -> GPT:
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=32, grid_size=4, num_classes=num_classes, n_layer=2, n_head=2, n_embd=32)).eval()
    torch.nn.init.normal_(model.head.weight, std=0.5)  # logits that differ from code to code
    return model


def test_window_placement_follows_taming():
    # training grid 8 in a row of 24: the code sits at offset 4 in the interior, windows hug the borders
    starts = [window_start(j, 24, 8) for j in range(24)]
    assert starts[:5] == [0] * 5 and starts[5:9] == [1, 2, 3, 4] and starts[19] == 15 and starts[23] == 16
    assert all(s <= j < s + 8 for j, s in enumerate(starts)) and max(starts) + 8 == 24


@pytest.mark.parametrize("cfg_scale, top_k", [(None, None), (2.0, 10)])
def test_at_the_training_size_it_equals_plain_sampling(cfg_scale, top_k):
    model = tiny_gpt()
    labels = torch.tensor([0, 1, 2, 1, 0])
    plain = generate(model, labels, cfg_scale=cfg_scale, top_k=top_k, generator=torch.Generator().manual_seed(7))
    sliding = generate_sliding(model, labels, 4, 4, cfg_scale=cfg_scale, top_k=top_k,
                               generator=torch.Generator().manual_seed(7))
    assert torch.equal(sliding.view(5, 16), plain)


def test_a_wide_grid_is_filled_with_codes_and_the_class_matters():
    model = tiny_gpt()
    wide = generate_sliding(model, torch.tensor([0, 0]), 4, 12, generator=torch.Generator().manual_seed(0))
    assert wide.shape == (2, 4, 12) and wide.min() >= 0 and wide.max() < 32
    other = generate_sliding(model, torch.tensor([2, 2]), 4, 12, generator=torch.Generator().manual_seed(0))
    assert not torch.equal(wide, other)
    with pytest.raises(ValueError, match="at least the training grid 4x4"):
        generate_sliding(model, 2, 3, 12)
