"""Training under bf16 autocast (what `trainer.precision=auto` picks on a GPU), run on the CPU:
every quantizer kind, the GAN path with LeCam, LPIPS and the GPT."""
import pytest
import torch

from tests.conftest import REPO, tiny_gpt_overrides, tiny_vqgan_overrides
from tests.test_quantize import KINDS, make
from transformer.lightning import fit_gpt
from transformer.train_config import GPTTrainConfig
from vqgan.config import load_config
from vqgan.lightning import fit_vqgan
from vqgan.train_config import VQGANTrainConfig

BF16 = "trainer.precision=bf16-mixed"


@pytest.mark.parametrize("kind", KINDS)
def test_quantizer_arithmetic_is_fp32_under_autocast(kind):
    """Under autocast the quantizer picks the codes an fp32 run picks, updates fp32 state,
    and hands back z_q in the caller's dtype."""
    extra = {"kmeans_init": True, "restart_threshold": 0.5} if kind == "ema" else {}
    torch.manual_seed(0)
    reference = make(kind, **extra)
    torch.manual_seed(0)
    quantizer = make(kind, **extra)
    z = torch.randn(4, 4, 6, 6)
    torch.manual_seed(1)
    expected = reference(z)
    torch.manual_seed(1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = quantizer(z.bfloat16())
    assert out.z_q.dtype == torch.bfloat16
    assert all(b.dtype != torch.bfloat16 for b in quantizer.buffers())
    assert all(p.dtype == torch.float32 for p in quantizer.parameters())
    same = (out.indices == expected.indices).float().mean()
    assert same > 0.9, f"only {same:.0%} of codes agree with fp32"  # z itself was rounded to bf16


def test_bf16_model_quantizes_fp32_input():
    """A tokenizer cast to bf16 (`.to(torch.bfloat16)`) still quantizes in fp32."""
    for kind in KINDS:
        quantizer = make(kind).eval().to(torch.bfloat16)
        out = quantizer(torch.randn(2, 4, 3, 3, dtype=torch.bfloat16))
        assert out.z_q.dtype == torch.bfloat16 and out.indices.dtype == torch.int64


@pytest.mark.parametrize("kind", KINDS)
def test_stage1_trains_under_bf16_autocast(tmp_path, emoji_subset, lpips_weights, kind):
    overrides = tiny_vqgan_overrides(tmp_path / "run", emoji_subset, steps=3) + [
        BF16, f"model.quantizer.kind={kind}", f"loss.perceptual.weights={lpips_weights}",
        "trainer.val_every=0", "trainer.image_every=0", "trainer.checkpoint_every=0",
        "model.quantizer.restart_threshold=0",
    ]
    if kind == "fsq":
        overrides += ["model.quantizer.fsq_levels=[4,4,4]", "model.embed_dim=3"]  # 64 codes
    if kind == "ema":
        overrides += ["model.quantizer.kmeans_init=true", "model.quantizer.restart_threshold=0.5"]
    if kind == "classic":  # the GAN after disc_start, with LeCam
        overrides += ["loss.disc_weight=0.5", "loss.disc_start=1", "loss.disc_ramp=1", "loss.lecam_weight=0.1",
                      "loss.discriminator.n_layers=2", "loss.discriminator.ndf=8"]
    config = load_config(VQGANTrainConfig, REPO / "configs" / "vqgan" / "emoji32.yaml", overrides)
    export = fit_vqgan(config)
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 3
    finite = [torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point()]
    assert all(finite)
    if kind == "ema":
        assert bool(ckpt["state_dict"]["model.quantize.train_state.initialized"])
    if kind == "classic":
        assert ckpt["optimizer_states"][1]["state"], "the discriminator never stepped"
    assert (export / "model.safetensors").is_file()


def test_gpt_trains_under_bf16_autocast(tmp_path, emoji_subset, tiny_tokenizer):
    overrides = tiny_gpt_overrides(tmp_path / "run", emoji_subset, tiny_tokenizer, steps=3) + [BF16]
    config = load_config(GPTTrainConfig, REPO / "configs" / "transformer" / "emoji32.yaml", overrides)
    fit_gpt(config)
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 3
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point())
