import pytest
import torch

from transformer import GPT, GPTConfig, generate
from transformer.sampling import filter_logits
from vqgan.config import ConfigError


def tiny_gpt(num_classes=3, seed=0, **kw) -> GPT:
    torch.manual_seed(seed)
    model = GPT(GPTConfig(vocab_size=32, grid_size=4, num_classes=num_classes, n_layer=2, n_head=2, n_embd=32, **kw))
    with torch.no_grad():  # an untrained model has a zero head: give it opinions
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0, 0.2)
    return model.eval()


def test_shapes_and_loss_at_init():
    model = GPT(GPTConfig(vocab_size=32, grid_size=4, num_classes=3, n_layer=2, n_head=2, n_embd=32))
    codes = torch.randint(0, 32, (5, 16))
    prefix = model.condition_tokens(torch.tensor([0, 1, 2, 3, 0]))
    assert model(prefix, codes).shape == (5, 16, 32)
    assert model.loss(prefix, codes).item() == pytest.approx(torch.log(torch.tensor(32.0)).item(), abs=1e-5)


def test_causality():
    model = tiny_gpt()
    prefix = model.condition_tokens(torch.tensor([1]))
    codes = torch.randint(0, 32, (1, 16))
    base = model(prefix, codes)
    for t in (3, 9):
        changed = codes.clone()
        changed[0, t] = (changed[0, t] + 1) % 32
        other = model(prefix, changed)
        # logits[:, s] see codes[:, :s]: positions up to t are unchanged, t + 1 changes
        torch.testing.assert_close(other[:, : t + 1], base[:, : t + 1])
        assert not torch.allclose(other[:, t + 1], base[:, t + 1])


def test_condition_changes_predictions_and_has_no_rotation():
    model = tiny_gpt()
    codes = torch.randint(0, 32, (1, 16))
    a = model(model.condition_tokens(torch.tensor([0])), codes)
    b = model(model.condition_tokens(torch.tensor([1])), codes)
    assert not torch.allclose(a, b)
    assert torch.equal(model.rope_cos[0], torch.ones_like(model.rope_cos[0]))  # prefix: identity rotation


def test_cached_logits_match_full_forward():
    model = tiny_gpt()
    prefix = model.condition_tokens(torch.tensor([0, 2]))
    codes = torch.randint(0, 32, (2, 16))
    full = model(prefix, codes)
    cache = model.new_cache(2)
    steps = [model.step(prefix, cache, start=0)]
    for t in range(15):
        steps.append(model.step(codes[:, t:t + 1], cache, start=1 + t))
    torch.testing.assert_close(torch.stack(steps, dim=1), full, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("kwargs", [dict(top_k=1), dict(), dict(top_k=5), dict(top_p=0.7), dict(cfg_scale=3.0, top_k=8)])
def test_cached_and_uncached_sampling_agree(kwargs):
    model = tiny_gpt()
    labels = torch.tensor([0, 1, 2, 0])
    fast = generate(model, labels, generator=torch.Generator().manual_seed(7), **kwargs)
    slow = generate(model, labels, generator=torch.Generator().manual_seed(7), use_cache=False, **kwargs)
    assert torch.equal(fast, slow)
    assert fast.shape == (4, 16) and fast.min() >= 0 and fast.max() < 32


def test_unconditional_sampling():
    model = tiny_gpt(num_classes=0)
    codes = generate(model, 3, generator=torch.Generator().manual_seed(0))
    assert codes.shape == (3, 16)
    with pytest.raises(ValueError, match="unconditional"):
        generate(model, torch.tensor([0]))
    with pytest.raises(ValueError, match="class-conditional"):
        generate(model, 2, cfg_scale=2.0)


def test_cfg_scale_one_equals_plain_conditional_sampling():
    model = tiny_gpt()
    labels = torch.tensor([0, 1, 2])
    plain = generate(model, labels, generator=torch.Generator().manual_seed(3))
    guided = generate(model, labels, cfg_scale=1.0, generator=torch.Generator().manual_seed(3))
    assert torch.equal(plain, guided)
    strong = generate(model, labels, cfg_scale=4.0, generator=torch.Generator().manual_seed(3))
    assert not torch.equal(plain, strong)


def test_only_image_codes_are_sampled():
    model = tiny_gpt()
    assert model.head.out_features == 32 < model.tok_emb.num_embeddings
    codes = generate(model, torch.tensor([0, 1, 2] * 10), temperature=5.0, generator=torch.Generator().manual_seed(0))
    assert codes.max() < 32


def test_topk_without_a_full_sort_equals_the_sorted_reference():
    torch.manual_seed(0)
    logits = torch.randn(6, 50)
    for k in (1, 7, 50):
        kth = torch.sort(logits, descending=True, dim=-1).values[:, k - 1:k]
        reference = torch.where(logits >= kth, logits, torch.full_like(logits, float("-inf")))
        assert torch.equal(filter_logits(logits, top_k=k), reference)


def test_filter_logits():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert torch.isinf(filter_logits(logits, top_k=2)).tolist() == [[False, False, True, True]]
    assert torch.isinf(filter_logits(logits, top_p=0.75)).tolist() == [[False, False, True, True]]
    assert torch.isinf(filter_logits(logits, top_p=0.4)).tolist() == [[False, True, True, True]]


@pytest.mark.parametrize("kwargs, message", [
    (dict(temperature=0.0), "temperature"), (dict(top_k=33), "top_k"), (dict(top_p=1.5), "top_p"),
    (dict(cfg_scale=-1.0), "cfg_scale"), (dict(num_tokens=17), "num_tokens"),
])
def test_sampling_arguments_out_of_range(kwargs, message):
    with pytest.raises(ValueError, match=message):
        generate(tiny_gpt(), torch.tensor([0]), **kwargs)
    with pytest.raises(ValueError, match="class labels"):
        generate(tiny_gpt(), torch.tensor([7]))


def test_weight_decay_only_on_matrices():
    from vqgan.optim import param_groups

    decay, no_decay = param_groups(tiny_gpt(), 0.1)
    assert all(p.dim() == 2 for p in decay["params"]) and all(p.dim() == 1 for p in no_decay["params"])
    assert len(no_decay["params"]) > 0


def test_config_checks_head_size():
    with pytest.raises(ValueError, match="n_embd"):
        GPTConfig(n_embd=30, n_head=3)
    from transformer.train_config import GPTTrainConfig
    from vqgan.config import load_config

    with pytest.raises(ConfigError, match="model.n_heads"):
        load_config(GPTTrainConfig, None, ["model.n_heads=2"])


def test_save_load_round_trip(tmp_path):
    model = tiny_gpt()
    model.save_pretrained(tmp_path / "gpt")
    loaded = GPT.from_pretrained(tmp_path / "gpt")
    labels = torch.tensor([0, 1])
    assert torch.equal(generate(model, labels, generator=torch.Generator().manual_seed(0)),
                       generate(loaded, labels, generator=torch.Generator().manual_seed(0)))


def test_loss_by_class_is_each_class_alone_over_batches():
    """Per-class validation bits, accumulated over two batches of mixed classes, equal the loss
    of each class's images on their own; a class with no images is NaN, not 0."""
    from transformer.metrics import LossByClass

    model = tiny_gpt(num_classes=4)
    labels = torch.tensor([0, 2, 0, 1, 2, 2, 1])
    codes = torch.randint(0, 32, (7, 16), generator=torch.Generator().manual_seed(3))
    prefix = model.condition_tokens(labels)
    metric = LossByClass(4)
    with torch.no_grad():
        for batch in (slice(0, 4), slice(4, 7)):
            losses, counted = model.token_losses(prefix[batch], codes[batch])
            metric.update(losses, counted, labels[batch])
        bits = metric.compute()
        for k in range(3):
            alone = model.loss(prefix[labels == k], codes[labels == k]) / torch.log(torch.tensor(2.0))
            assert bits[k].item() == pytest.approx(alone.item(), rel=1e-5)
    assert len(set(bits[:3].tolist())) == 3  # the classes do differ: the grouping is tested
    assert torch.isnan(bits[3])
