import numpy as np
import pytest
import torch
from PIL import Image

from vqgan import losses
from vqgan.perceptual import LPIPS, LPIPSWeightsError, PerceptualConfig
from tests.conftest import REPO


def test_hinge_and_generator_losses():
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.0])
    assert losses.discriminator_loss(real, fake).item() == pytest.approx(0.5 * (0.25 + 0.5))
    assert losses.generator_loss(fake).item() == pytest.approx(1.0)
    assert losses.discriminator_loss(real, fake, "non_saturating").item() > 0


def test_adaptive_weight_is_the_gradient_norm_ratio():
    w = torch.tensor([1.0, 2.0], requires_grad=True)
    nll = (3 * w).sum()  # grad (3, 3)
    gan = (w * torch.tensor([1.0, 0.0])).sum()  # grad (1, 0)
    weight = losses.adaptive_weight(nll, gan, w, max_weight=1e4)
    assert weight.item() == pytest.approx(np.hypot(3, 3) / (1 + 1e-4))
    assert losses.adaptive_weight(nll, gan, w, max_weight=2.0).item() == 2.0


def test_adversarial_factor_starts_and_ramps():
    assert losses.adversarial_factor(9, start=10) == 0.0
    assert losses.adversarial_factor(10, start=10) == 1.0
    assert losses.adversarial_factor(10, start=10, ramp=4) == 0.25
    assert losses.adversarial_factor(20, start=10, ramp=4) == 1.0


def test_lpips_identical_images_give_zero():
    model = LPIPS(PerceptualConfig(net="alex", weights="random"))
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert torch.allclose(model(x, x), torch.zeros(2))


def load_fixture(name: str) -> torch.Tensor:
    array = np.array(Image.open(REPO / "tests/fixtures/lpips" / f"{name}.png").convert("RGB"))
    return torch.from_numpy(array).permute(2, 0, 1)[None].float() / 127.5 - 1


def test_lpips_alex_matches_published_distances(lpips_weights):
    model = LPIPS(PerceptualConfig(net="alex", weights=str(lpips_weights)))
    ref = load_fixture("ex_ref")
    assert round(model(ref, load_fixture("ex_p0")).item(), 3) == 0.722
    assert round(model(ref, load_fixture("ex_p1")).item(), 3) == 0.138


def test_lpips_stays_frozen_in_eval(lpips_weights):
    model = LPIPS(PerceptualConfig(net="vgg", weights=str(lpips_weights)))
    model.train()
    assert not model.model.training and not any(p.requires_grad for p in model.parameters())


def test_missing_lpips_weights_say_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.delenv("VQGAN_LPIPS_WEIGHTS", raising=False)
    with pytest.raises(LPIPSWeightsError, match="prepare_lpips_weights.py"):
        LPIPS(PerceptualConfig(weights=""))
    with pytest.raises(LPIPSWeightsError, match="not found"):
        LPIPS(PerceptualConfig(weights=str(tmp_path)))
    monkeypatch.setenv("VQGAN_LPIPS_WEIGHTS", str(tmp_path / "nowhere"))
    with pytest.raises(LPIPSWeightsError, match="VQGAN_LPIPS_WEIGHTS"):
        LPIPS(PerceptualConfig(weights=""))
