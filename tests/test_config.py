import json
from pathlib import Path

import pytest
import torch

from vqgan.config import ConfigError, load_config, save_config
from vqgan.train_config import VQGANTrainConfig

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_yaml_and_overrides_fill_the_schema(tmp_path):
    path = write(tmp_path, "model:\n  ch: 96\ndata:\n  batch_size: 4\n")
    config = load_config(VQGANTrainConfig, path, ["trainer.max_steps=7", "model.ch_mult=[1,2]"])
    assert isinstance(config, VQGANTrainConfig)
    assert (config.model.ch, config.data.batch_size, config.trainer.max_steps) == (96, 4, 7)
    assert config.model.ch_mult == [1, 2]


def test_misspelt_key_in_file_names_key_and_file(tmp_path):
    path = write(tmp_path, "model:\n  chh: 48\n")
    with pytest.raises(ConfigError) as err:
        load_config(VQGANTrainConfig, path)
    assert "model.chh" in str(err.value) and str(path) in str(err.value)
    assert "model.ch" in str(err.value)  # the suggestion


def test_misspelt_override_names_key():
    with pytest.raises(ConfigError, match=r"trainer\.max_step'"):
        load_config(VQGANTrainConfig, None, ["trainer.max_step=3"])


def test_wrong_type_names_key(tmp_path):
    path = write(tmp_path, "data:\n  batch_size: many\n")
    with pytest.raises(ConfigError, match=r"data\.batch_size"):
        load_config(VQGANTrainConfig, path)


@pytest.mark.parametrize("override, key", [
    ("data.batch_size=0", "data.batch_size"),
    ("model.ch=-8", "model.ch"),
    ("model.ch_mult=[1,1,1,1,1,1,1]", "model.ch_mult"),
    ("model.attn_resolutions=[5]", "model.attn_resolutions"),
    ("model.quantizer.kind=vq", "model.quantizer.kind"),
    ("data.resolution=64", "data.resolution"),
])
def test_out_of_range_values_are_refused(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(VQGANTrainConfig, None, [override])


def test_override_without_equals_sign():
    with pytest.raises(ConfigError, match="key=value"):
        load_config(VQGANTrainConfig, None, ["trainer.max_steps"])


def test_missing_file():
    with pytest.raises(ConfigError, match="not found"):
        load_config(VQGANTrainConfig, "nope.yaml")


def test_saved_config_loads_back_equal(tmp_path):
    config = load_config(VQGANTrainConfig, REPO / "configs/vqgan/emoji32.yaml", ["seed=3"])
    save_config(config, tmp_path / "config.yaml")
    assert load_config(VQGANTrainConfig, tmp_path / "config.yaml") == config


@pytest.mark.parametrize("path", sorted((REPO / "configs" / "vqgan").rglob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_vqgan_config_loads(path):
    load_config(VQGANTrainConfig, path)


def test_nan_learning_rate_and_a_missing_gpu_are_named(tmp_path):
    from vqgan.optim import OptimConfig
    from vqgan.trainer import TrainerConfig, build_trainer

    with pytest.raises(ValueError, match="optim.lr"):
        OptimConfig(lr=float("nan"))
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="trainer.accelerator=gpu"):
            build_trainer(TrainerConfig(accelerator="gpu"), tmp_path, [])


@pytest.mark.parametrize("text, message", [
    ("model: [1, 2\n", "not valid YAML"),
    ("- a\n- b\n", "must be a mapping"),
    ("model: !!python/object/apply:os.system ['touch {marker}']\n", "not valid YAML"),
])
def test_bad_yaml_files_are_one_line_errors(tmp_path, text, message):
    from vqgan.train_config import VQGANTrainConfig

    path = tmp_path / "bad.yaml"
    path.write_text(text.format(marker=tmp_path / "ran"))
    with pytest.raises(ConfigError, match=message):
        load_config(VQGANTrainConfig, path)
    assert not (tmp_path / "ran").exists()


def test_a_config_json_that_is_a_list_is_refused(tmp_path):
    import json

    from vqgan import VQGAN

    (tmp_path / "config.json").write_text(json.dumps([1, 2]))
    with pytest.raises(ConfigError, match="JSON object"):
        VQGAN.from_pretrained(tmp_path)


@pytest.mark.parametrize("values, message", [
    ({"quantizer": {"codebok_size": 8}}, r"unknown key 'quantizer.codebok_size' \(did you mean 'quantizer.codebook_size'"),
    ({"ch": "64"}, r"'ch' must be of type int, got '64'"),
    ({"ch": True}, r"'ch' must be of type int"),
    ({"ch_mult": [1, 2.5]}, r"'ch_mult\[1\]' must be of type int"),
    ({"quantizer": 3}, r"'quantizer' must be a mapping"),
    ({"ch": -1}, r"model.ch' must be positive"),
])
def test_config_json_is_read_strictly_without_omegaconf(tmp_path, values, message):
    from vqgan.export import read_config
    from vqgan.model import VQGANConfig

    (tmp_path / "config.json").write_text(json.dumps(values))
    with pytest.raises(ConfigError, match=message):
        read_config(VQGANConfig, tmp_path)


def test_config_json_round_trip_keeps_every_value(tmp_path):
    from dataclasses import asdict

    from vqgan.export import read_config
    from vqgan.model import VQGANConfig
    from vqgan.quantize import QuantizerConfig

    config = VQGANConfig(ch=16, ch_mult=[1, 2], norm_groups=8, dropout=0.5,
                         embed_dim=4, quantizer=QuantizerConfig(kind="fsq", codebook_size=8 * 5 * 5 * 5, beta=1))
    (tmp_path / "config.json").write_text(json.dumps(asdict(config)))
    assert read_config(VQGANConfig, tmp_path) == config


def test_yaml11_boolean_words_stay_strings_in_overrides():
    """`eval.fid_weights=off` is the string "off" (YAML 1.1 would read False), while a bool
    key still takes off / yes."""
    from transformer.main_job import MainJobConfig

    job = load_config(MainJobConfig, "configs/main/cpu.yaml", ["eval.fid_weights=off", "eval.lpips_weights=no"])
    assert (job.eval.fid_weights, job.eval.lpips_weights) == ("off", "no")
    config = load_config(VQGANTrainConfig, "configs/vqgan/emoji32.yaml",
                         ["model.quantizer.kmeans_init=off", "model.quantizer.eval_noise=yes"])
    assert config.model.quantizer.kmeans_init is False and config.model.quantizer.eval_noise is True
