import json
import math

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import EMOJI, REPO
from transformer.evaluation import evaluation_set, format_table
from transformer.main_job import MainJobConfig, run_main_job
from transformer.metrics import balanced_labels
from vqgan import fid as fid_lib
from vqgan.config import load_config
from vqgan.data import DataConfig, ImageFolderDataset, scan_images
from vqgan.images import to_uint8
from vqgan.metrics import PSNR_CAP_DB, image_quality
from vqgan.perceptual import LPIPS, PerceptualConfig


def test_identical_images_score_perfectly(lpips_weights):
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    quality = image_quality(x, x.clone())
    assert torch.all(quality["psnr"] == PSNR_CAP_DB)
    torch.testing.assert_close(quality["ssim"], torch.ones(4))
    lpips = LPIPS(PerceptualConfig(net="alex", weights=str(lpips_weights)))
    assert torch.all(lpips(x, x) == 0)


def test_psnr_of_a_known_error():
    x = torch.zeros(1, 3, 8, 8)
    y = x + 0.2  # 0.1 on the [0, 1] scale: MSE 0.01 -> 20 dB
    assert image_quality(x, y)["psnr"].item() == pytest.approx(20.0, abs=1e-4)
    assert image_quality(x, y)["ssim"].item() < 1.0


def emoji_batch(count: int, flip: bool = False) -> torch.Tensor:
    index = scan_images(EMOJI, progress=False)
    dataset = ImageFolderDataset(index, list(range(0, len(index.paths), len(index.paths) // count))[:count], 32, False)
    x = torch.stack([dataset[i]["image"] for i in range(count)])
    return x.flip(-1) if flip else x


def test_fid_of_a_set_against_itself_is_near_zero(fid_weights):
    fid = fid_lib.frechet_inception_distance(str(fid_weights))
    x = to_uint8(emoji_batch(40))
    fid.update(x, real=True)
    fid.update(x, real=False)
    same = fid.compute().item()
    fid.reset()  # keeps the real features
    fid.update(to_uint8(torch.rand(40, 3, 32, 32) * 2 - 1), real=False)
    noise = fid.compute().item()
    assert abs(same) < 1e-2 and noise > 100


def test_inception_features_are_the_standard_2048(fid_weights):
    features = fid_lib.InceptionFeatures(fid_lib.resolve_fid_weights(str(fid_weights)))
    out = features(torch.full((2, 3, 32, 32), 128, dtype=torch.uint8))
    assert out.shape == (2, 2048) and torch.all(out >= 0)  # pool features after ReLU


def test_missing_fid_weights_say_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.delenv("VQGAN_FID_WEIGHTS", raising=False)
    with pytest.raises(fid_lib.FIDWeightsError, match="prepare_fid_weights.py"):
        fid_lib.resolve_fid_weights("")
    with pytest.raises(fid_lib.FIDWeightsError, match="not found"):
        fid_lib.resolve_fid_weights(str(tmp_path))


def test_balanced_labels():
    labels = balanced_labels(300, 9)
    counts = torch.bincount(labels)
    assert counts.sum() == 300 and counts.max() - counts.min() <= 1


def test_evaluation_splits_train_and_val_partition_the_folder(emoji_subset):
    data = DataConfig(root=str(emoji_subset), resolution=32, val_fraction=0.25)
    splits = {name: set(evaluation_set(data, name).subset) for name in ("train", "val", "all")}
    assert splits["train"] and splits["val"] and not splits["train"] & splits["val"]
    assert splits["train"] | splits["val"] == splits["all"] and len(splits["all"]) == 72
    subset = evaluation_set(data, "train", num_real=len(splits["val"])).subset  # as many as val has
    assert len(subset) == len(splits["val"]) and set(subset) < splits["train"]
    assert subset == evaluation_set(data, "train", num_real=len(splits["val"])).subset  # fixed draw


def test_main_job_pipeline_on_a_tiny_preset(tmp_path, emoji_subset, lpips_weights, fid_weights):
    config = load_config(MainJobConfig, REPO / "configs" / "main" / "tiny.yaml", [
        f"run_dir={tmp_path / 'job'}", f"eval.lpips_weights={lpips_weights}", f"eval.fid_weights={fid_weights}",
        "eval.num_samples=9", "eval.batch_size=9", "samples_per_row=1", "eval.floors=true",
    ])
    config.vqgan_overrides += [f"data.root={emoji_subset}", "data.val_fraction=0.2", "loss.perceptual.weights=random"]
    metrics = run_main_job(config)
    job = tmp_path / "job"
    for name in ("reconstructions.png", "samples.png", "metrics.json", "tokenizer/model.safetensors",
                 "gpt/model.safetensors", "gpt/tokenizer/config.json"):
        assert (job / name).is_file(), name
    saved = json.loads((job / "metrics.json").read_text())
    assert saved["gfid_counts"] == {"real": 14, "generated": 9} and saved["rfid_counts"]["real"] == 14
    assert sum(saved["gfid_samples_per_class"].values()) == 9
    assert saved["fid_floor_images"] == 9
    assert saved["gfid_class_replaced"].keys() == saved["gfid_samples_per_class"].keys()
    assert all(math.isfinite(value) for value in saved["gfid_class_replaced"].values())
    assert set(metrics["timings"]) == {"stage1_s", "stage2_s", "evaluation_s", "total_s"}
    assert saved["machine"]["cpu_capability"] and saved["stage1_steps"] == 4 and saved["stage1_budget"] == {}
    samples = load_file(str(job / "samples.safetensors"))
    assert samples["samples"].dtype == torch.uint8 and samples["samples"].shape == (9, 3, 32, 32)


def test_main_job_with_maskgit_on_a_tiny_preset(tmp_path, emoji_subset, lpips_weights):
    config = load_config(MainJobConfig, REPO / "configs" / "main" / "tiny.yaml", [
        f"run_dir={tmp_path / 'job'}", f"eval.lpips_weights={lpips_weights}", "eval.fid_weights=off",
        "eval.num_samples=6", "eval.batch_size=6", "eval.steps=3", "samples_per_row=1",
    ])
    config.vqgan_overrides += [f"data.root={emoji_subset}", "data.val_fraction=0.2", "loss.perceptual.weights=random"]
    config.gpt_overrides += ["model.kind=maskgit", "sample.steps=2"]
    run_main_job(config)
    assert json.loads((tmp_path / "job" / "gpt" / "config.json").read_text())["kind"] == "maskgit"
    saved = json.loads((tmp_path / "job" / "metrics.json").read_text())
    assert saved["eval_config"]["steps"] == 3 and (tmp_path / "job" / "samples.png").is_file()


def test_main_job_silhouette_pipeline_on_a_tiny_preset(tmp_path, emoji_subset, lpips_weights):
    """configs/main/silhouette.yaml's shape at tiny size: a conditioning tokenizer on silhouettes,
    the image tokenizer, an image-conditional GPT, then IoU and condition/sample grids."""
    config = load_config(MainJobConfig, REPO / "configs" / "main" / "tiny.yaml", [
        f"run_dir={tmp_path / 'job'}", f"eval.lpips_weights={lpips_weights}", "eval.fid_weights=off",
        "eval.num_samples=6", "eval.batch_size=6", "samples_per_row=2",
        "condition_vqgan_config=configs/vqgan/emoji32.yaml",
    ])
    config.vqgan_overrides += [f"data.root={emoji_subset}", "data.val_fraction=0.2", "loss.perceptual.weights=random"]
    config.condition_vqgan_overrides = [o for o in config.vqgan_overrides if "codebook_size" not in o] + [
        "model.quantizer.codebook_size=32"]
    config.gpt_overrides += ["condition.source=image", "condition.derive=silhouette"]
    run_main_job(config)
    job = tmp_path / "job"
    saved = json.loads((job / "metrics.json").read_text())
    assert 0.0 <= saved["silhouette_iou"] <= 1.0 and "stage0_s" in saved["timings"]
    assert 0.0 < saved["silhouette_iou_shuffled"] < 1.0
    gpt = json.loads((job / "gpt" / "config.json").read_text())
    assert (gpt["cond_vocab_size"], gpt["condition_derive"], gpt["num_classes"]) == (32, "silhouette", 0)
    assert (job / "gpt" / "condition_tokenizer" / "model.safetensors").is_file()
    assert (job / "samples.png").is_file()


@pytest.mark.parametrize("path", sorted((REPO / "configs" / "main").glob("*.yaml")), ids=lambda p: p.name)
def test_every_main_job_preset_loads(path):
    load_config(MainJobConfig, path)


def test_fast_frechet_distance_equals_torchmetrics():
    from torchmetrics.image.fid import _compute_fid

    torch.manual_seed(0)
    a, b = torch.randn(50, 16, dtype=torch.float64), torch.randn(60, 16, dtype=torch.float64) * 1.5 + 0.3
    args = (a.mean(0), torch.cov(a.T), b.mean(0), torch.cov(b.T))
    torch.testing.assert_close(fid_lib.frechet_distance(*args), _compute_fid(*args), rtol=1e-6, atol=1e-8)


def test_fid_metric_uses_the_fast_distance_on_real_updates():
    class Features(torch.nn.Module):
        num_features = 8

        def forward(self, x):
            return x.float().flatten(1)[:, :8]

    fid = fid_lib.FID(feature=Features(), reset_real_features=False)
    torch.manual_seed(1)
    real, fake = torch.randint(0, 255, (30, 3, 4, 4), dtype=torch.uint8), torch.randint(0, 200, (30, 3, 4, 4), dtype=torch.uint8)
    fid.update(real, real=True)
    fid.update(fake, real=False)
    r, f = real.double().flatten(1)[:, :8], fake.double().flatten(1)[:, :8]
    from torchmetrics.image.fid import _compute_fid

    expected = _compute_fid(r.mean(0), torch.cov(r.T), f.mean(0), torch.cov(f.T))
    assert fid.compute().item() == pytest.approx(expected.item(), rel=1e-4)


def test_an_unknown_inception_file_is_refused_before_loading(tmp_path):
    fake = tmp_path / fid_lib.WEIGHTS_FILE
    fake.write_bytes(b"not the network")
    with pytest.raises(fid_lib.FIDWeightsError, match="SHA-1"):
        fid_lib.frechet_inception_distance(str(tmp_path))


class PooledPixels(torch.nn.Module):
    """A cheap stand-in for Inception: each channel averaged over 2 x 2 quadrants (12 features)."""

    num_features = 12

    def forward(self, x):
        return torch.nn.functional.adaptive_avg_pool2d(x.float(), 2).flatten(1)


def test_fid_floors_draw_balanced_images_of_the_other_split(emoji_subset, tiny_tokenizer):
    from transformer.fid_floors import balanced_positions, fid_floors
    from vqgan import VQGAN

    labels = [0] * 10 + [1] * 3 + [2] * 10
    positions = balanced_positions(labels, 8, 3)
    assert sorted(labels[k] for k in positions) == [0, 0, 0, 1, 1, 1, 2, 2]  # balanced_labels' counts
    with pytest.raises(ValueError, match="class 'b'.*has 3"):
        balanced_positions(labels, 12, 3, class_names=["a", "b", "c"])

    data = DataConfig(root=str(emoji_subset), resolution=32)
    pool = evaluation_set(data, "train")
    chosen = balanced_positions([pool.index.labels[j] for j in pool.subset], 12, 3)
    fid = fid_lib.FID(feature=PooledPixels(), reset_real_features=False)
    fid.update(to_uint8(torch.stack([pool[k]["image"] for k in chosen])), real=True)  # the floors' own images
    floors = fid_floors(VQGAN.from_pretrained(tiny_tokenizer), pool, 12, 3, fid)
    assert floors.metrics["fid_floor_images"] == 12
    assert floors.metrics["fid_floor_real"] == pytest.approx(0, abs=1e-2)  # the same images reached the metric
    assert floors.metrics["fid_floor_reconstructed"] > 1.0  # an untrained tokenizer's reconstructions are not those
    assert floors.reconstructed_features.shape == (12, PooledPixels.num_features)
    assert torch.equal(torch.bincount(floors.labels), torch.bincount(balanced_labels(12, 3)))


def test_class_costs_replace_one_class_at_a_time():
    """gfid_class_replaced: a class whose samples are far off costs the most, and replacing it
    leaves the FID of the floor's images alone; FID from features equals update + compute."""
    from transformer.fid_floors import Floors, class_costs

    g = torch.Generator().manual_seed(0)
    fid = fid_lib.FID(feature=PooledPixels(), reset_real_features=False)
    fid.update(torch.randint(0, 256, (40, 3, 8, 8), generator=g, dtype=torch.uint8), real=True)
    floor_images = torch.randint(0, 256, (30, 3, 8, 8), generator=g, dtype=torch.uint8)
    fid.update(floor_images, real=False)
    updated = fid.compute().item()
    assert fid.fid_of_features(fid.features(floor_images)) == pytest.approx(updated, rel=1e-6)

    floor_labels = torch.arange(30) // 10  # sorted by class, as fid_floors' positions often are
    floors = Floors({}, fid.features(floor_images), floor_labels)
    labels = balanced_labels(30, 3)  # 0, 1, 2, 0, ...: another order, the same counts
    samples = torch.empty_like(floors.reconstructed_features)
    for c in range(3):
        samples[labels == c] = floors.reconstructed_features[floor_labels == c]
    samples[labels == 1] += 50.0  # class 1's samples far off
    costs = class_costs(fid, samples, labels, floors, ["a", "b", "c"])
    floor_fid = fid.fid_of_features(floors.reconstructed_features)
    assert costs["b"] == pytest.approx(floor_fid, rel=1e-6)
    assert min(costs["a"], costs["c"]) > floor_fid + 1000
    assert f"gfid with real b  {costs['b']:.4g}" in format_table({"gfid": 1.0, "gfid_class_replaced": costs})


def test_eval_floors_need_a_disjoint_split():
    from transformer.eval_config import EvalConfig

    with pytest.raises(ValueError, match="eval.floors"):
        EvalConfig(split="all", floors=True)
    with pytest.raises(ValueError, match="num_samples >= 2"):
        EvalConfig(floors=True, num_samples=0)
    EvalConfig(split="train", floors=True)


def test_code_bits_per_class_and_overall(emoji_subset, tiny_tokenizer):
    """evaluate's bits per code: the GPT's loss on the tokenizer's codes of the split, in bits,
    and per class the same loss over that class's images alone."""
    from transformer.metrics import code_bits
    from transformer.model import GPT, GPTConfig
    from vqgan import VQGAN

    tokenizer = VQGAN.from_pretrained(tiny_tokenizer).eval()
    torch.manual_seed(0)
    gpt = GPT(GPTConfig(vocab_size=64, grid_size=8, num_classes=3, n_layer=1, n_head=2, n_embd=32,
                        class_names=["flags", "food_drink", "smileys_emotion"])).eval()
    torch.nn.init.normal_(gpt.head.weight, std=0.5)  # not the uniform start: classes that differ
    dataset = evaluation_set(DataConfig(root=str(emoji_subset), resolution=32), "val")
    measured = code_bits(gpt, tokenizer, dataset, batch_size=3)
    images = torch.stack([dataset[i]["image"] for i in range(len(dataset))])
    labels = torch.tensor([dataset[i]["label"] for i in range(len(dataset))])
    codes = tokenizer.encode(images).flatten(1)  # (N, 64)
    with torch.no_grad():
        bits = lambda keep: (gpt.loss(gpt.condition_tokens(labels[keep]), codes[keep]) / math.log(2)).item()  # noqa: E731
        assert measured["bits_per_code"] == pytest.approx(bits(labels >= 0), rel=1e-5)
        for k, name in enumerate(gpt.config.class_names):
            if (labels == k).any():
                assert measured["bits_per_code_by_class"][name] == pytest.approx(bits(labels == k), rel=1e-5)
            else:
                assert name not in measured["bits_per_code_by_class"]
    assert len(set(measured["bits_per_code_by_class"].values())) > 1
