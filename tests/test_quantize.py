import pytest
import torch

import math

from vqgan.quantize import NearestNeighbourQuantizer, QuantizerConfig, build_quantizer, perplexity

KINDS = ["l2", "classic", "ema", "gumbel", "fsq"]


def make(kind: str, dim: int = 4, size: int = 32, **kw):
    if kind == "fsq":
        levels = [4, 3, 3, 3][:dim] if dim == 4 else [8, 5, 5, 5]
        kw.setdefault("fsq_levels", levels)
        size = math.prod(kw["fsq_levels"])
    return build_quantizer(QuantizerConfig(kind=kind, codebook_size=size, **kw), dim=dim)


@pytest.mark.parametrize("kind", KINDS)
def test_lookup_equals_eval_forward(kind):
    torch.manual_seed(0)
    q = make(kind).eval()
    z = torch.randn(2, 4, 3, 5)
    out = q(z)
    assert out.indices.shape == (2, 3, 5) and out.indices.dtype == torch.int64
    assert out.z_q.shape == z.shape
    torch.testing.assert_close(q.lookup(out.indices), out.z_q, atol=1e-6, rtol=0)


@pytest.mark.parametrize("kind", KINDS)
def test_gradients_reach_input_and_codebook(kind):
    torch.manual_seed(0)
    q = make(kind)
    z = torch.randn(2, 4, 3, 3, requires_grad=True)
    out = q(z)
    (out.z_q.sum() + out.loss).backward()
    assert z.grad is not None and z.grad.abs().sum() > 0
    if kind in ("l2", "classic"):
        assert q.embedding.weight.grad.abs().sum() > 0
    if kind == "gumbel":
        assert q.embed.weight.grad.abs().sum() > 0 and q.proj.weight.grad.abs().sum() > 0
    if kind == "ema":
        assert not q.embedding.weight.requires_grad  # moved by averages, not by the optimizer


def test_beta_weighs_the_commitment_term():
    """d loss / d z = beta * 2 (z - q) / N; d loss / d codebook = 2 (q - z) / N for the used code."""
    beta = 0.25
    q = NearestNeighbourQuantizer(dim=2, codebook_size=2, beta=beta, usage_window=1, normalize=False)
    with torch.no_grad():
        q.embedding.weight.copy_(torch.tensor([[0.0, 0.0], [10.0, 10.0]]))
    z = torch.tensor([1.0, 2.0]).view(1, 2, 1, 1).requires_grad_(True)
    out = q(z)
    assert out.indices.item() == 0
    out.loss.backward()
    n = 2  # elements averaged by the mse
    torch.testing.assert_close(z.grad.flatten(), beta * 2 * torch.tensor([1.0, 2.0]) / n)
    torch.testing.assert_close(q.embedding.weight.grad[0], 2 * torch.tensor([-1.0, -2.0]) / n)
    torch.testing.assert_close(q.embedding.weight.grad[1], torch.zeros(2))


def test_nearest_code_is_chosen():
    q = NearestNeighbourQuantizer(dim=2, codebook_size=3, beta=0.25, usage_window=1, normalize=False).eval()
    with torch.no_grad():
        q.embedding.weight.copy_(torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 5.0]]))
    z = torch.tensor([[0.9, 0.1], [0.1, 4.0], [-0.2, 0.1]]).T.reshape(1, 2, 1, 3)
    assert q(z).indices.flatten().tolist() == [1, 2, 0]


def test_l2_codes_are_unit_vectors_chosen_by_cosine():
    q = NearestNeighbourQuantizer(dim=2, codebook_size=2, beta=0.25, usage_window=1, normalize=True).eval()
    with torch.no_grad():
        q.embedding.weight.copy_(torch.tensor([[10.0, 0.0], [0.0, 0.1]]))
    z = torch.tensor([0.1, 3.0]).view(1, 2, 1, 1)  # close in angle to the short code
    out = q(z)
    assert out.indices.item() == 1
    torch.testing.assert_close(out.z_q.flatten(), torch.tensor([0.0, 1.0]), atol=1e-6, rtol=0)


def test_usage_window_and_perplexity():
    q = build_quantizer(QuantizerConfig(kind="classic", codebook_size=4, usage_window=2), dim=1)
    with torch.no_grad():
        q.embedding.weight.copy_(torch.arange(4.0).view(4, 1))
    for values in ([0.0, 0.0], [1.0, 1.0], [2.0, 2.0]):  # the first batch leaves the 2-batch window
        out = q(torch.tensor(values).view(1, 1, 1, 2))
    assert out.stats["usage"].item() == pytest.approx(0.5)
    assert out.stats["window_perplexity"].item() == pytest.approx(2.0)
    assert out.stats["perplexity"].item() == pytest.approx(1.0)
    assert perplexity(torch.ones(8)).item() == pytest.approx(8.0)
    q.eval()
    q(torch.tensor([3.0, 3.0]).view(1, 1, 1, 2))
    assert q.usage.usage().item() == pytest.approx(0.5)  # eval batches do not enter the window


def test_fsq_bijection_over_all_indices():
    q = make("fsq", dim=4, fsq_levels=[8, 5, 5, 5]).eval()
    assert q.codebook_size == 1000
    indices = torch.arange(1000).view(1, 10, 100)
    codes = q.lookup(indices)
    assert codes.abs().max() <= 1 and torch.unique(codes.flatten(2).transpose(1, 2).reshape(-1, 4), dim=0).shape[0] == 1000
    assert torch.equal(q.codes_to_indices(codes), indices)  # index -> code -> index
    z = torch.randn(3, 4, 5, 5) * 3
    out = q(z)
    assert torch.equal(q.codes_to_indices(out.z_q), out.indices)  # what the forward emits is a code


def test_fsq_config_checks_the_product():
    with pytest.raises(ValueError, match="product of fsq_levels"):
        QuantizerConfig(kind="fsq", codebook_size=999, fsq_levels=[8, 5, 5, 5])
    with pytest.raises(ValueError, match=">= 3"):
        QuantizerConfig(kind="fsq", codebook_size=16, fsq_levels=[2, 8])


def test_ema_moves_codes_toward_assigned_means():
    q = build_quantizer(QuantizerConfig(kind="ema", codebook_size=2, decay=0.5, epsilon=0.0), dim=1)
    with torch.no_grad():
        q.embedding.weight.copy_(torch.tensor([[0.0], [10.0]]))
        q.train_state.ema_sum.copy_(q.embedding.weight)  # counts start at 1: sum / count = code
    z = torch.tensor([1.0, 3.0, 9.0]).view(1, 1, 1, 3)  # 1 and 3 go to code 0 (mean 2), 9 to code 1
    q.train()(z)
    # count0 = 0.5 * 1 + 0.5 * 2 = 1.5, sum0 = 0.5 * 0 + 0.5 * 4 = 2 -> 4/3; code1: (5 + 4.5) / 1 = 9.5
    torch.testing.assert_close(q.embedding.weight.flatten(), torch.tensor([4 / 3, 9.5]))
    q(z)  # a second step moves them further toward the means 2 and 9
    assert 4 / 3 < q.embedding.weight[0].item() < 2 and 9 < q.embedding.weight[1].item() < 9.5


def test_restart_replaces_exactly_the_dead_codes():
    torch.manual_seed(0)
    q = build_quantizer(QuantizerConfig(kind="classic", codebook_size=4, restart_threshold=0.5, decay=0.5), dim=2)
    with torch.no_grad():
        q.embedding.weight.copy_(torch.tensor([[0.0, 0.0], [1.0, 1.0], [50.0, 50.0], [-50.0, -50.0]]))
    z = torch.tensor([[0.1, 0.0], [0.9, 1.0], [0.0, 0.2], [1.1, 0.9]]).T.reshape(1, 2, 2, 2)
    before = q.embedding.weight.detach().clone()
    q.train()(z)  # codes 2, 3: count 1 -> 0.5 * 1 = 0.5, not below 0.5 yet
    assert torch.equal(q.embedding.weight, before)
    q(z)  # now 0.25 < 0.5: restarted from this batch's vectors
    after = q.embedding.weight.detach()
    assert torch.equal(after[:2], before[:2])
    batch = rearrange_rows(z)
    for k in (2, 3):
        assert any(torch.equal(after[k], row) for row in batch)
    assert torch.equal(q.train_state.code_counts[2:], torch.ones(2))


def rearrange_rows(z):
    return z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])


def test_ema_kmeans_init_uses_the_first_batch():
    torch.manual_seed(0)
    q = build_quantizer(QuantizerConfig(kind="ema", codebook_size=2, kmeans_init=True), dim=1).train()
    z = torch.tensor([0.0, 0.1, 10.0, 10.1]).view(1, 1, 1, 4)
    q(z)
    assert sorted(q.embedding.weight.flatten().tolist()) == pytest.approx([0.05, 10.05], abs=1e-3)


def test_gumbel_temperature_schedule_and_eval_argmax():
    q = build_quantizer(QuantizerConfig(kind="gumbel", codebook_size=8, tau_start=1.0, tau_end=0.1, tau_steps=4), dim=3)
    assert q.temperature() == pytest.approx(1.0)
    z = torch.randn(2, 3, 2, 2)
    for _ in range(4):
        q.train()(z)
    assert q.temperature() == pytest.approx(0.1)
    q.eval()
    assert torch.equal(q(z).indices, q.proj(z).argmax(1))
