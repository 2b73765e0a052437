"""Shared fixtures: tiny configs and tiny image folders, so the suite runs on 2 CPU cores."""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
EMOJI = REPO / "data" / "emoji"
# the training commands on the emoji configs, for tests that run them as a user would
VQGAN_SCRIPT = [sys.executable, str(REPO / "scripts" / "train_vqgan.py"), "--config", str(REPO / "configs/vqgan/emoji32.yaml")]
GPT_SCRIPT = [sys.executable, str(REPO / "scripts" / "train_transformer.py"), "--config",
              str(REPO / "configs/transformer/emoji32.yaml")]
LPIPS_WEIGHTS = Path(os.environ.get("VQGAN_LPIPS_WEIGHTS", REPO / "weights" / "lpips"))
FID_WEIGHTS = Path(os.environ.get("VQGAN_FID_WEIGHTS", REPO / "weights" / "fid"))

torch.set_num_threads(2)


def _weights(folder: Path, name: str, script: str) -> Path:
    """Real pretrained weights that `make test` prepares; without them the test is skipped,
    or fails when REQUIRE_WEIGHTS is set (as `make test` does)."""
    if not (folder / name).is_file():
        message = f"{name} missing in {folder}: run python scripts/{script}"
        if os.environ.get("REQUIRE_WEIGHTS"):
            pytest.fail(message)
        pytest.skip(message)
    return folder


@pytest.fixture(scope="session")
def lpips_weights() -> Path:
    return _weights(LPIPS_WEIGHTS, "alexnet.safetensors", "prepare_lpips_weights.py")


@pytest.fixture(scope="session")
def fid_weights() -> Path:
    return _weights(FID_WEIGHTS, "inception-2015-12-05.pt", "prepare_fid_weights.py")


def copy_emoji(root: Path, counts: dict[str, int]) -> Path:
    """A class folder under `root` per category of the bundled emoji, with its first `count` images."""
    for category, count in counts.items():
        (root / category).mkdir(parents=True)
        for path in sorted((EMOJI / category).glob("*.png"))[:count]:
            shutil.copy(path, root / category / path.name)
    return root


@pytest.fixture(scope="session")
def emoji_subset(tmp_path_factory) -> Path:
    """A copy of 3 emoji categories, 24 images each: quick to scan and train on."""
    return copy_emoji(tmp_path_factory.mktemp("emoji_subset"), {"flags": 24, "food_drink": 24, "smileys_emotion": 24})


TINY_MODEL = [
    "model.ch=16", "model.norm_groups=8", "model.ch_mult=[1,2,2]", "model.num_res_blocks=1",
    "model.z_channels=16", "model.embed_dim=8", "model.quantizer.codebook_size=64",
]


def tiny_vqgan_overrides(run_dir: Path, data_root: Path, steps: int = 4) -> list[str]:
    """Overrides that shrink configs/vqgan/emoji32.yaml to seconds of CPU time."""
    return TINY_MODEL + [
        f"run_dir={run_dir}", f"data.root={data_root}", "data.batch_size=8", "data.num_workers=0",
        "loss.perceptual.weights=random", "loss.perceptual.resize=0",
        f"trainer.max_steps={steps}", "trainer.image_every=2", "trainer.checkpoint_every=2",
        "trainer.val_every=2", "trainer.log_every=1", "trainer.progress_bar=false",
    ]


@pytest.fixture(scope="session")
def tiny_tokenizer(tmp_path_factory) -> Path:
    """An untrained tiny tokenizer export: 32 px images, 8x8 grid, 64 codes."""
    from vqgan import VQGAN, VQGANConfig
    from vqgan.quantize import QuantizerConfig

    torch.manual_seed(0)
    config = VQGANConfig(ch=16, norm_groups=8, ch_mult=[1, 2, 2], num_res_blocks=1, z_channels=16, embed_dim=8,
                         quantizer=QuantizerConfig(codebook_size=64))
    directory = tmp_path_factory.mktemp("tokenizer") / "tokenizer"
    VQGAN(config).save_pretrained(directory)
    return directory


def tiny_gpt_overrides(run_dir: Path, data_root: Path, tokenizer: Path, steps: int = 4) -> list[str]:
    """Overrides that shrink configs/transformer/emoji32.yaml to seconds of CPU time."""
    return [
        f"run_dir={run_dir}", f"data.root={data_root}", f"tokenizer={tokenizer}", "data.batch_size=8",
        "model.n_layer=2", "model.n_head=2", "model.n_embd=32",
        "sample.per_class=2", f"trainer.max_steps={steps}", "trainer.image_every=2", "trainer.checkpoint_every=2",
        "trainer.val_every=2", "trainer.log_every=1", "trainer.progress_bar=false",
    ]
