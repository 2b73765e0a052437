import json
import shutil
import subprocess
import sys

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.conftest import REPO, tiny_gpt_overrides
from transformer import GPT
from transformer import codes as code_cache
from transformer.generator import load_generator
from transformer.pairing import TokenizerMismatchError
from transformer.lightning import GPTModule, fit_gpt
from transformer.train_config import GPTTrainConfig
from transformer.weight_average import fit_checkpoint
from vqgan import VQGAN
from vqgan.config import load_config
from vqgan.data import ImageFolderDataset, scan_images

CONFIG = REPO / "configs" / "transformer" / "emoji32.yaml"


def test_code_cache_is_reused_and_invalidated(tmp_path, emoji_subset, tiny_tokenizer, capsys):
    data = tmp_path / "data"
    shutil.copytree(emoji_subset, data)
    tokenizer = VQGAN.from_pretrained(tiny_tokenizer)
    index = scan_images(data)
    cache = code_cache.load_or_build(tokenizer, tiny_tokenizer, index, 32, tmp_path / "codes", batch_size=16)
    assert cache.codes.shape == (len(index.paths), 2, 8, 8)
    x = ImageFolderDataset(index, [5], 32, train=False)[0]["image"][None]
    assert torch.equal(cache.codes[5, 0], tokenizer.encode(x)[0])
    assert torch.equal(cache.codes[5, 1], tokenizer.encode(x.flip(-1))[0])

    mtime = cache.path.stat().st_mtime_ns
    again = code_cache.load_or_build(tokenizer, tiny_tokenizer, index, 32, tmp_path / "codes")
    assert again.path == cache.path and again.path.stat().st_mtime_ns == mtime

    Image.new("RGB", (64, 64), "red").save(data / "flags" / "new.png")  # the file list changed
    capsys.readouterr()
    rebuilt = code_cache.load_or_build(tokenizer, tiny_tokenizer, scan_images(data), 32, tmp_path / "codes")
    assert rebuilt.path != cache.path and rebuilt.codes.shape[0] == cache.codes.shape[0] + 1
    assert "files changed" in capsys.readouterr().out
    other = code_cache.load_or_build(tokenizer, tiny_tokenizer, scan_images(data), 16, tmp_path / "codes")
    assert other.path != rebuilt.path and other.codes.shape[2:] == (4, 4)


def test_code_dataset_views_are_deterministic(tmp_path, emoji_subset, tiny_tokenizer):
    tokenizer = VQGAN.from_pretrained(tiny_tokenizer)
    cache = code_cache.load_or_build(tokenizer, tiny_tokenizer, scan_images(emoji_subset), 32, tmp_path / "c")
    dataset = code_cache.CodeDataset(cache, list(range(20)), views=[0, 1], seed=0)
    first = [dataset[i]["codes"] for i in range(20)]
    assert all(torch.equal(a, dataset[i]["codes"]) for i, a in enumerate(first))
    views = {int(torch.equal(first[i], cache.codes[i, 1].flatten())) for i in range(20)}
    assert views == {0, 1}  # both the image and its flip are used


def test_translate_moves_content_and_extends_the_border():
    x = torch.zeros(1, 1, 5, 5)
    x[0, 0, 2, 2] = 1.0
    x[0, 0, :, 0] = 2.0  # the left column, to see the border extend
    moved = code_cache.translate(x, 1, -2)  # down 1, left 2
    assert moved[0, 0, 3, 0] == 1.0 and moved.sum() == 1.0  # the left column left the frame
    right = code_cache.translate(x, 0, 2)
    assert (right[0, 0, :, :3] == 2.0).all() and right[0, 0, 2, 4] == 1.0  # the border column extends
    assert code_cache.shift_offsets(1)[0] == (0, 0) and len(set(code_cache.shift_offsets(1))) == 9


def test_shifted_code_cache_holds_every_offset(tmp_path, emoji_subset, tiny_tokenizer):
    tokenizer = VQGAN.from_pretrained(tiny_tokenizer)
    index = scan_images(emoji_subset, progress=False)
    plain = code_cache.load_or_build(tokenizer, tiny_tokenizer, index, 32, tmp_path / "c")
    shifted = code_cache.load_or_build(tokenizer, tiny_tokenizer, index, 32, tmp_path / "c", shift=1)
    assert shifted.path != plain.path and shifted.codes.shape == (len(index.paths), 18, 8, 8)
    assert torch.equal(shifted.codes[:, :2], plain.codes)  # views 0 and 1: the image and its flip, as before
    x = ImageFolderDataset(index, [3], 32, train=False)[0]["image"][None]
    for k, (dy, dx) in enumerate(code_cache.shift_offsets(1)):
        moved = code_cache.translate(x, dy, dx)
        assert torch.equal(shifted.codes[3, 2 * k], tokenizer.encode(moved)[0])
        assert torch.equal(shifted.codes[3, 2 * k + 1], tokenizer.encode(moved.flip(-1))[0])
    assert len({tuple(shifted.codes[3, v].flatten().tolist()) for v in range(18)}) > 9  # shifts change the codes

    unflipped = code_cache.CodeDataset(shifted, list(range(20)), code_cache.training_views(18, flip=False))
    items = [unflipped[(0, i)]["codes"] for i in range(20)]
    # flip=false draws only unmirrored views, and not always the unshifted one
    assert all(any(torch.equal(c, shifted.codes[i, v].flatten()) for v in range(0, 18, 2)) for i, c in enumerate(items))
    assert any(not torch.equal(c, shifted.codes[i, 0].flatten()) for i, c in enumerate(items))


def test_gpt_training_end_to_end_then_sample_script(tmp_path, emoji_subset, tiny_tokenizer):
    run = tmp_path / "run"
    config = load_config(GPTTrainConfig, CONFIG, tiny_gpt_overrides(run, emoji_subset, tiny_tokenizer, steps=4))
    export = fit_gpt(config)
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 4
    assert not any(k.startswith("tokenizer") for k in ckpt["state_dict"])  # the frozen tokenizer is not saved
    assert (run / "images" / "samples_last.png").is_file()
    gpt, tokenizer = load_generator(export)
    assert gpt.config.class_names == ["flags", "food_drink", "smileys_emotion"]
    # the validation loss per class, weighted by each class's validation images, is the whole loss
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    index = scan_images(emoji_subset, use_labels=True)
    val_labels = [index.labels[i] for i in index.split(config.data.val_fraction, config.data.split_seed)[1]]
    counts = {name: val_labels.count(k) for k, name in enumerate(index.class_names)}
    assert sum(1 for n in counts.values() if n) >= 2
    by_class = {name: events.Scalars(f"val_by_class/{name}")[-1].value for name, n in counts.items() if n}
    weighted = sum(counts[name] * bits for name, bits in by_class.items()) / len(val_labels)
    assert weighted == pytest.approx(events.Scalars("val/bits_per_token")[-1].value, rel=1e-4)

    out = tmp_path / "grid.png"
    script = str(REPO / "scripts" / "sample.py")
    result = subprocess.run([sys.executable, script, "--model", str(export), "--num", "6", "--classes", "0,2",
                             "--cfg", "2", "--top-k", "10", "--out", str(out), "--save-individual", str(tmp_path / "each")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert Image.open(out).size == (3 * 34 + 2, 2 * 34 + 2)  # 3 per row, 2 rows, 2 px padding
    rows = json.loads(out.with_suffix(".json").read_text())["rows"]
    assert [r["class_name"] for r in rows] == ["flags", "smileys_emotion"]
    assert len(list((tmp_path / "each").glob("*.png"))) == 6

    wide = tmp_path / "wide.png"  # sliding-window sampling: 8 x 12 codes from an 8 x 8 model
    result = subprocess.run([sys.executable, script, "--model", str(export), "--num", "2", "--classes", "1",
                             "--grid", "8x12", "--save-individual", str(tmp_path / "wide"), "--out", str(wide)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert Image.open(tmp_path / "wide" / "00000.png").size == (48, 32)  # width x height in pixels


@pytest.mark.parametrize("args, message", [
    (["--classes", "0,9"], "out of range"), (["--top-k", "65"], "top_k"), (["--temperature", "0"], "temperature"),
    (["--top-p", "0"], "top_p"), (["--num", "0"], "--num"), (["--out", "grid.json"], ".png"),
    (["--cfg", "-1"], "cfg_scale"), (["--cfg", "nan"], "cfg_scale"), (["--seed", str(10**23)], "seed"),
    (["--num", str(10**12)], "--num"), (["--out", "/proc/version/grid.png"], "writable"),
])
def test_sample_script_refuses_bad_arguments(tmp_path, tiny_tokenizer, args, message):
    from transformer import GPT, GPTConfig

    GPT(GPTConfig(vocab_size=64, grid_size=8, num_classes=3, n_layer=1, n_head=2, n_embd=32)).save_pretrained(
        tmp_path / "gpt", tokenizer_dir=tiny_tokenizer)
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "sample.py"), "--model", str(tmp_path / "gpt"),
                             "--out", str(tmp_path / "x.png"), *args], capture_output=True, text=True)
    assert result.returncode != 0 and message in result.stderr
    assert not (tmp_path / "x.png").exists()


def test_gpt_and_tokenizer_of_other_sizes_are_refused(tmp_path, emoji_subset, tiny_tokenizer):
    overrides = tiny_gpt_overrides(tmp_path / "run", emoji_subset, tiny_tokenizer) + ["model.vocab_size=512"]
    with pytest.raises(TokenizerMismatchError, match=r"vocab_size=512 but the tokenizer .* has codebook_size=64"):
        fit_gpt(load_config(GPTTrainConfig, CONFIG, overrides))
    overrides[-1] = "model.grid_size=16"
    with pytest.raises(TokenizerMismatchError, match=r"grid_size=16 but the tokenizer .* has grid_size=8"):
        fit_gpt(load_config(GPTTrainConfig, CONFIG, overrides))


@pytest.mark.parametrize("path", sorted((REPO / "configs" / "transformer").rglob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_transformer_config_loads(path):
    load_config(GPTTrainConfig, path)


def test_compiled_training_matches_eager(tmp_path, emoji_subset, tiny_tokenizer):
    """trainer.compile=true is a fast path: the same weights, and the same moving average of
    them, as the eager run after a few batches."""
    weights = {}
    for compiled in (False, True):
        run = tmp_path / f"run_{compiled}"
        overrides = tiny_gpt_overrides(run, emoji_subset, tiny_tokenizer, steps=3) + [
            f"trainer.compile={str(compiled).lower()}", "trainer.image_every=0", "trainer.val_every=3",
            "model.dropout=0", "ema_decay=0.5"]
        fit_gpt(load_config(GPTTrainConfig, CONFIG, overrides))
        weights[compiled] = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert weights[True].keys() == weights[False].keys()
    assert any(key.startswith("gpt_ema.") for key in weights[True])
    for key, value in weights[False].items():
        torch.testing.assert_close(weights[True][key], value, atol=1e-4, rtol=1e-4, msg=key)


def test_sizes_come_from_the_tokenizer_and_the_folder(tmp_path, emoji_subset, tiny_tokenizer):
    export = fit_gpt(load_config(GPTTrainConfig, CONFIG, tiny_gpt_overrides(tmp_path / "run", emoji_subset,
                                                                            tiny_tokenizer, steps=1)))
    config = GPT.from_pretrained(export).config
    folders = sorted(p.name for p in emoji_subset.iterdir() if p.is_dir())
    assert (config.vocab_size, config.grid_size) == (64, 8)  # the tiny tokenizer's codebook and grid
    assert (config.num_classes, config.class_names) == (len(folders), folders)


def test_a_class_count_that_disagrees_is_refused_before_tokenizing(tmp_path, emoji_subset, tiny_tokenizer):
    overrides = tiny_gpt_overrides(tmp_path / "run", emoji_subset, tiny_tokenizer) + ["model.num_classes=5"]
    with pytest.raises(ValueError, match=r"model.num_classes=5 but .* has 3 class folders"):
        fit_gpt(load_config(GPTTrainConfig, CONFIG, overrides))
    assert not (tmp_path / "run").exists()  # no code cache, no run folder
    unconditional = fit_gpt(load_config(GPTTrainConfig, CONFIG, tiny_gpt_overrides(
        tmp_path / "uncond", emoji_subset, tiny_tokenizer, steps=1) + ["model.num_classes=0"]))
    assert GPT.from_pretrained(unconditional).config.num_classes == 0


def test_run_feedback_step_bar_lr_and_hparams(tmp_path, emoji_subset, tiny_tokenizer, capfd):
    """One progress bar over the run (global step of max_steps), the learning rate in the logs,
    and every setting in TensorBoard's hparams."""
    overrides = tiny_gpt_overrides(tmp_path / "run", emoji_subset, tiny_tokenizer, steps=6)
    overrides += ["trainer.progress_bar=true", "trainer.val_every=0", "data.batch_size=4"]
    fit_gpt(load_config(GPTTrainConfig, CONFIG, overrides))
    captured = capfd.readouterr()
    shown = (captured.out + captured.err).replace("\r", "\n")
    assert "6/6" in shown and "step (epoch" in shown
    hparams = (tmp_path / "run" / "tensorboard" / "hparams.yaml").read_text()
    assert "model.n_layer: 2" in hparams and "optim.lr:" in hparams
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    lrs = [e.value for e in events.Scalars("train/lr")]
    assert len(lrs) >= 2 and lrs[-1] > lrs[0] > 0  # warm-up: the rate rises


def test_moving_average_step_and_checkpoint_fitting(tiny_tokenizer):
    config = load_config(GPTTrainConfig, CONFIG, ["ema_decay=0.75", "model.n_layer=1", "model.n_embd=32",
                                                  "model.n_head=2", "model.vocab_size=64", "model.grid_size=8",
                                                  "model.num_classes=3"])
    module = GPTModule(config, VQGAN.from_pretrained(tiny_tokenizer))
    assert module.inference_gpt is module.gpt_ema.module
    assert not any(p.requires_grad for p in module.gpt_ema.parameters())  # never in the optimizer or DDP's buckets
    step = torch.optim.SGD(module.gpt.parameters(), lr=0.0)
    module.optimizer_step(0, 0, step)  # the first step copies the weights
    start = {k: v.clone() for k, v in module.gpt.state_dict().items()}
    with torch.no_grad():
        for p in module.gpt.parameters():
            p.add_(1.0)
    module.optimizer_step(0, 1, step)
    averaged = module.gpt_ema.module.state_dict()
    trained = [name for name, _ in module.gpt.named_parameters()]
    assert all(torch.allclose(averaged[k], 0.75 * start[k] + 0.25 * (start[k] + 1)) for k in trained)

    # a checkpoint from a run without an average: the average starts from its weights
    plain = {f"gpt.{k}": v for k, v in start.items()}
    fit_checkpoint(plain, averaging=True)
    module.load_state_dict(plain)
    assert all(torch.equal(module.gpt_ema.module.state_dict()[k], start[k]) for k in start)
    with pytest.warns(UserWarning, match="ema_decay=0 leaves it out"):  # and the other way round
        fit_checkpoint(plain, averaging=False)
    assert not any(k.startswith("gpt_ema.") for k in plain) and len(plain) == len(start)


def test_moving_average_is_exported_and_switched_on_and_off_by_resumes(tmp_path, emoji_subset, tiny_tokenizer):
    run = tmp_path / "run"

    def train(steps: int, decay: float):
        overrides = tiny_gpt_overrides(run, emoji_subset, tiny_tokenizer, steps=steps)
        fit_gpt(load_config(GPTTrainConfig, CONFIG, overrides + [f"ema_decay={decay}", f"export_dir={run}/gpt{steps}"]))
        return torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]

    train(2, 0.0)
    state = train(4, 0.5)  # resumed with an average: it started from the step-2 weights
    average = {k[len("gpt_ema.module."):]: v for k, v in state.items() if k.startswith("gpt_ema.module.")}
    trained = {k[len("gpt."):]: v for k, v in state.items() if k.startswith("gpt.")}
    assert average.keys() == trained.keys() and int(state["gpt_ema.n_averaged"]) == 3
    exported = load_file(str(run / "gpt4" / "model.safetensors"))
    assert all(torch.equal(exported[k], average[k]) for k in exported)  # the export is the average
    assert any(not torch.equal(average[k], trained[k]) for k in average)
    state = train(6, 0.0)  # resumed without: the trained weights go on, the average is left out
    assert not any(k.startswith("gpt_ema.") for k in state)
    exported = load_file(str(run / "gpt6" / "model.safetensors"))
    assert all(torch.equal(exported[k], state[f"gpt.{k}"]) for k in exported)
