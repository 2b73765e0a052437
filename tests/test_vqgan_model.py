import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from vqgan import VQGAN, VQGANConfig
from vqgan.config import ConfigError
from vqgan.discriminator import DiscriminatorConfig, PatchDiscriminator
from vqgan.quantize import QuantizerConfig


def tiny_config(**kw) -> VQGANConfig:
    base = dict(ch=16, norm_groups=8, ch_mult=[1, 2, 2], num_res_blocks=1, z_channels=16, embed_dim=8,
                attn_resolutions=[8], quantizer=QuantizerConfig(codebook_size=64))
    base.update(kw)
    return VQGANConfig(**base)


def test_shapes_and_grid():
    model = VQGAN(tiny_config())
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    out = model(x)
    assert out.reconstruction.shape == x.shape
    assert model.encode(x).shape == (2, 8, 8) and model.config.grid_size == 8
    assert model.decode(model.encode(x)).shape == (2, 3, 32, 32)
    assert model.training  # inference helpers restore the mode


def test_decode_is_not_clamped():
    model = VQGAN(tiny_config())
    with torch.no_grad():
        model.decoder.conv_out.bias.fill_(5.0)
    assert model.decode(torch.zeros(1, 8, 8, dtype=torch.long)).max() > 1.0


def test_decode_refuses_out_of_range_codes():
    model = VQGAN(tiny_config())
    with pytest.raises(ValueError, match="codes must lie in"):
        model.decode(torch.full((1, 8, 8), 64))


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(0)
    model = VQGAN(tiny_config())
    model.train()
    model(torch.randn(2, 3, 32, 32))  # fills the usage window, which is not exported
    model.save_pretrained(tmp_path / "tok")
    loaded = VQGAN.from_pretrained(tmp_path / "tok")
    assert not loaded.training
    assert not any(".usage." in k for k in load_file(str(tmp_path / "tok" / "model.safetensors")))
    x = torch.randn(3, 3, 32, 32)
    assert torch.equal(model.encode(x), loaded.encode(x))
    assert torch.equal(model.reconstruct(x), loaded.reconstruct(x))


def test_from_pretrained_errors_name_the_file(tmp_path):
    VQGAN(tiny_config()).save_pretrained(tmp_path / "tok")
    weights = tmp_path / "tok" / "model.safetensors"
    state = load_file(str(weights))

    with pytest.raises(FileNotFoundError, match="not found"):
        VQGAN.from_pretrained(tmp_path / "nothing")

    config = json.loads((tmp_path / "tok" / "config.json").read_text())
    config["ch"] = 32  # no longer matches the weights
    (tmp_path / "tok" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="does not match"):
        VQGAN.from_pretrained(tmp_path / "tok")
    config["chh"] = 1
    (tmp_path / "tok" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match="chh"):
        VQGAN.from_pretrained(tmp_path / "tok")

    VQGAN(tiny_config()).save_pretrained(tmp_path / "tok")
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ValueError, match="not a readable safetensors"):
        VQGAN.from_pretrained(tmp_path / "tok")
    state.pop("quant_conv.bias")
    save_file(state, str(weights))
    with pytest.raises(ValueError, match="quant_conv.bias"):
        VQGAN.from_pretrained(tmp_path / "tok")
    weights.unlink()
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        VQGAN.from_pretrained(tmp_path / "tok")


def test_taming_module_names():
    keys = VQGAN(tiny_config()).state_dict().keys()
    for key in ("encoder.down.0.block.0.conv1.weight", "encoder.down.0.downsample.conv.weight",
                "encoder.down.2.attn.0.q.weight", "encoder.mid.attn_1.proj_out.bias",
                "decoder.up.2.block.1.conv2.weight", "decoder.up.2.attn.1.k.weight",
                "decoder.up.1.upsample.conv.weight", "decoder.up.0.block.0.nin_shortcut.weight",
                "quantize.embedding.weight", "quant_conv.weight", "post_quant_conv.weight"):
        assert key in keys, key
    assert not any(k.startswith("decoder.up.0.upsample") or k.startswith("encoder.down.2.downsample") for k in keys)
    assert sum(k.startswith("decoder.up.0.block.") and k.endswith("conv1.weight") for k in keys) == 2


@pytest.mark.parametrize("layers, field, out", [(1, 16, 14), (2, 34, 6), (3, 70, 2)])
def test_patchgan_receptive_field(layers, field, out):
    disc = PatchDiscriminator(DiscriminatorConfig(n_layers=layers))
    assert disc.receptive_field() == field
    assert disc.output_size(32) == out == disc(torch.zeros(1, 3, 32, 32)).shape[-1]


def test_patchgan_warns_when_patches_cover_the_image():
    with pytest.warns(UserWarning, match="receptive field 70"):
        PatchDiscriminator(DiscriminatorConfig(n_layers=3)).check_image_size(32)


def test_encode_and_decode_forgive_common_inputs():
    """uint8 images, one unbatched image, flat codes from generate, a bf16 model with fp32 input."""
    torch.manual_seed(0)
    model = VQGAN(tiny_config()).eval()
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    as_uint8 = ((x + 1) * 127.5).round().to(torch.uint8)
    codes = model.encode(x)
    assert torch.equal(model.encode(as_uint8), model.encode(as_uint8.float() / 127.5 - 1))
    assert torch.equal(model.encode(x[0]), codes[:1])
    assert torch.equal(model.decode(codes.flatten(1)), model.decode(codes))
    half = VQGAN(tiny_config()).eval().to(torch.bfloat16)
    assert half.decode(half.encode(x)).dtype == torch.bfloat16 and half.dtype == torch.bfloat16
    with pytest.raises(ValueError, match="expected images"):
        model.encode(torch.rand(2, 1, 32, 32))
    with pytest.raises(ValueError, match="decode expects codes"):
        model.decode(torch.zeros(2, 10, dtype=torch.long))


@pytest.mark.parametrize("images, message", [
    (torch.rand(2, 3, 30, 30), "multiples of 4"),
    (torch.rand(2, 3, 32, 32) * 255, r"\[-1, 1\].*scaled to \[0, 255\]"),
    (torch.randint(0, 255, (2, 3, 32, 32), dtype=torch.int32), "uint8"),
])
def test_encode_names_what_it_cannot_take(images, message):
    tokenizer = VQGAN(VQGANConfig(ch=16, norm_groups=8, num_res_blocks=1, z_channels=16, ch_mult=[1, 2, 2]))
    with pytest.raises((ValueError, TypeError), match=message):
        tokenizer.encode(images)
