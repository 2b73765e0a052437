"""The fast decode steps give what the eager reference gives: the static-shape step's logits,
and the compiled step's sampled codes (the CUDA-graph step is checked on a GPU: gpu_check.sh)."""
import pytest
import torch

from tests.conftest import REPO
from tests.test_gpt import tiny_gpt
from transformer import generate
from transformer.decode_step import resolve_mode


def test_static_step_equals_the_sliced_step():
    model = tiny_gpt()
    prefix = model.condition_tokens(torch.tensor([0, 2]))
    codes = torch.randint(0, 32, (2, 15), generator=torch.Generator().manual_seed(0))
    sliced, static = model.new_cache(2), model.new_cache(2)
    with torch.inference_mode():
        model.step(prefix, sliced, start=0)
        model.step(prefix, static, start=0)
        for t in range(15):
            expected = model.step(codes[:, t:t + 1], sliced, start=1 + t)
            got = model.step_at(codes[:, t:t + 1], static, torch.tensor(1 + t))
            torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(static.k, sliced.k)


@pytest.mark.parametrize("kwargs", [dict(top_k=5), dict(cfg_scale=3.0, top_p=0.9)])
def test_compiled_sampling_gives_the_eager_codes(kwargs):
    model = tiny_gpt()
    labels = torch.tensor([0, 1, 2, 0])
    eager = generate(model, labels, generator=torch.Generator().manual_seed(7), decode="eager", **kwargs)
    compiled = generate(model, labels, generator=torch.Generator().manual_seed(7), decode="compile", **kwargs)
    assert torch.equal(compiled, eager)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cuda_graph_sampling_gives_the_eager_codes(dtype):
    model = tiny_gpt().to("cuda", dtype)
    labels = torch.tensor([0, 1, 2, 0], device="cuda")
    eager = generate(model, labels, top_k=8, cfg_scale=2.0, decode="eager",
                     generator=torch.Generator("cuda").manual_seed(7))
    graphed = generate(model, labels, top_k=8, cfg_scale=2.0, decode="graph",
                       generator=torch.Generator("cuda").manual_seed(7))
    agree = (graphed == eager).float().mean().item()
    assert agree == 1.0 if dtype == torch.float32 else agree > 0.9  # bf16 kernels may round differently


def test_decode_modes_are_checked():
    assert resolve_mode("auto", torch.device("cpu")) == "eager"
    assert resolve_mode("auto", torch.device("cuda")) == "graph"
    with pytest.raises(ValueError, match="CUDA"):
        resolve_mode("graph", torch.device("cpu"))
    with pytest.raises(ValueError, match="decode must be one of"):
        resolve_mode("fast", torch.device("cpu"))


def test_concatenating_cache_baseline_samples_the_same_codes():
    """The benchmark's taming-style baseline is a fair one: same model, same codes."""
    import sys

    sys.path.insert(0, str(REPO / "scripts"))
    from concat_cache_sampler import concat_cache_generate

    model = tiny_gpt()
    labels = torch.tensor([0, 1, 2, 1])
    ours = generate(model, labels, top_k=8, generator=torch.Generator().manual_seed(5))
    baseline = concat_cache_generate(model, labels, top_k=8, generator=torch.Generator().manual_seed(5))
    assert torch.equal(baseline, ours)
