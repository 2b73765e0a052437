import pytest
import torch

from vqgan.quantize import NearestNeighbourQuantizer, QuantizerConfig, build_quantizer, perplexity

KINDS = ["l2", "classic"]


@pytest.mark.parametrize("kind", KINDS)
def test_lookup_equals_eval_forward(kind):
    torch.manual_seed(0)
    q = build_quantizer(QuantizerConfig(kind=kind, codebook_size=32), dim=4).eval()
    z = torch.randn(2, 4, 3, 5)
    out = q(z)
    assert out.indices.shape == (2, 3, 5) and out.indices.dtype == torch.int64
    assert out.z_q.shape == z.shape
    torch.testing.assert_close(q.lookup(out.indices), out.z_q, atol=1e-6, rtol=0)


@pytest.mark.parametrize("kind", KINDS)
def test_gradients_reach_input_and_codebook(kind):
    torch.manual_seed(0)
    q = build_quantizer(QuantizerConfig(kind=kind, codebook_size=16), dim=4)
    z = torch.randn(2, 4, 3, 3, requires_grad=True)
    out = q(z)
    (out.z_q.sum() + out.loss).backward()
    assert z.grad is not None and z.grad.abs().sum() > 0
    assert q.embedding.weight.grad is not None and q.embedding.weight.grad.abs().sum() > 0


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
