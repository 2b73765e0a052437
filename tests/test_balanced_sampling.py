"""data.balance_classes: every class drawn equally often in training, for both stages."""
from collections import Counter

import pytest
import torch

from tests.conftest import copy_emoji
from tests.test_data import make_folder
from transformer.lightning import CodeDataModule
from transformer.train_config import GPTTrainConfig
from vqgan import VQGAN
from vqgan.data import DataConfig, ImageDataModule
from vqgan.resume import EpochSampler, class_balanced_weights

SKEWED = [0] * 180 + [1] * 20  # a class nine times the size of the other


def drawn_classes(sampler: EpochSampler, labels: list[int]) -> Counter:
    return Counter(labels[i] for _, i in sampler)


def test_weights_are_one_over_class_size():
    weights = class_balanced_weights([0, 0, 0, 1, 2, 2])
    assert torch.allclose(weights, torch.tensor([1 / 3, 1 / 3, 1 / 3, 1.0, 0.5, 0.5], dtype=torch.float64))


def test_a_balanced_epoch_draws_both_classes_about_equally():
    plain = EpochSampler(len(SKEWED), seed=0)
    balanced = EpochSampler(len(SKEWED), seed=0, weights=class_balanced_weights(SKEWED))
    assert drawn_classes(plain, SKEWED)[1] == 20
    small = drawn_classes(balanced, SKEWED)[1]  # binomial(200, 0.5): 100 +- 7
    assert 70 <= small <= 130, small
    assert len(list(balanced)) == len(balanced) == 200


def test_balanced_order_is_fixed_by_seed_and_epoch_and_resumes_mid_epoch():
    sampler = EpochSampler(len(SKEWED), seed=3, weights=class_balanced_weights(SKEWED))
    first = list(sampler)
    assert list(sampler) == first
    sampler.skip = 50  # as a resume 50 samples into the epoch sets it
    assert list(sampler) == first[50:]
    sampler.set_epoch(1)
    assert [i for _, i in sampler] != [i for _, i in first]


def test_weights_must_match_the_items():
    with pytest.raises(ValueError, match="3 sampling weights for 4 items"):
        EpochSampler(4, seed=0, weights=torch.ones(3))


def test_balancing_needs_labels():
    with pytest.raises(ValueError, match="data.balance_classes"):
        DataConfig(use_labels=False, balance_classes=True)


def small_class_share(datamodule) -> float:
    datamodule.setup()
    labels = torch.cat([batch["label"] for batch in datamodule.train_dataloader()])
    return (labels == 1).float().mean().item()


def test_image_datamodule_balances_a_skewed_folder(tmp_path):
    root = make_folder(tmp_path / "d", {"a": 72, "b": 8})
    shares = {}
    for balance in (False, True):
        config = DataConfig(root=str(root), resolution=8, batch_size=8, num_workers=0, val_fraction=0.0,
                            balance_classes=balance)
        shares[balance] = small_class_share(ImageDataModule(config))
    assert shares[False] == pytest.approx(0.1)
    assert shares[True] > 0.3, shares  # 0.5 expected


def test_code_datamodule_balances_a_skewed_folder(tmp_path, tiny_tokenizer):
    root = copy_emoji(tmp_path / "skewed", {"flags": 36, "food_drink": 4})
    tokenizer = VQGAN.from_pretrained(tiny_tokenizer)
    shares = {}
    for balance in (False, True):
        config = GPTTrainConfig(run_dir=str(tmp_path / f"run_{balance}"), tokenizer=str(tiny_tokenizer),
                                data=DataConfig(root=str(root), resolution=32, batch_size=8, num_workers=0,
                                                val_fraction=0.0, balance_classes=balance))
        shares[balance] = small_class_share(CodeDataModule(config, tokenizer))
    assert shares[False] == pytest.approx(0.1)
    assert shares[True] > 0.3, shares  # 0.5 expected
