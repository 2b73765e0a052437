"""The main job: tokenizer, then GPT, then evaluation, all in one run folder.

    <run_dir>/stage1/  <run_dir>/stage2/   training runs (checkpoints, logs, image grids)
    <run_dir>/tokenizer/  <run_dir>/gpt/   the exports
    <run_dir>/reconstructions.png          validation images (rows) over their reconstructions
    <run_dir>/samples.png                  generated images, one row per class
    <run_dir>/metrics.json                 PSNR, SSIM, LPIPS, rFID, usage, gFID, timings
"""
from __future__ import annotations

import dataclasses
import json
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from vqgan.config import load_config, save_config
from vqgan.schema import require
from vqgan.data import scan_images
from vqgan.hardware import describe_machine
from vqgan.images import image_grid, paired_rows, save_png, to_uint8
from vqgan.io import save_tensors
from vqgan.lightning import fit_vqgan
from vqgan.train_config import VQGANTrainConfig

from .eval_config import EvalConfig
from .evaluation import evaluate, fid_metric, format_table, write_metrics
from .job_budget import CONDITION_SHARE, END_MARGIN_S, STAGE1_SHARE, estimate_evaluation_seconds
from .generator import load_condition_tokenizer, load_generator
from .pairing import resolve_model_config
from .lightning import fit_gpt
from .train_config import GPTTrainConfig


@dataclass
class MainJobConfig:
    run_dir: str = "runs/demo"
    vqgan_config: str = "configs/vqgan/emoji32.yaml"
    vqgan_overrides: list[str] = field(default_factory=list)
    gpt_config: str = "configs/transformer/emoji32.yaml"
    gpt_overrides: list[str] = field(default_factory=list)
    # An image-conditional job (gpt_overrides set condition.source=image and condition.derive):
    # the conditioning tokenizer is trained first, on the derived condition images, with this config.
    condition_vqgan_config: str = ""
    condition_vqgan_overrides: list[str] = field(default_factory=list)
    samples_per_row: int = 10  # columns of samples.png
    budget_minutes: float = 0.0  # whole job, evaluation included; 0: the stage configs' max_steps
    eval: EvalConfig = field(default_factory=EvalConfig)

    def __post_init__(self):
        require(self.budget_minutes >= 0, "budget_minutes", "must be >= 0")


def samples_by_class(images: torch.Tensor, labels: torch.Tensor | None, per_row: int) -> torch.Tensor:
    """The first `per_row` samples of each class, class after class."""
    if labels is None:
        return images[:per_row * 4]
    rows = [images[labels == c][:per_row] for c in labels.unique(sorted=True)]
    return torch.cat([r for r in rows if r.shape[0] == per_row])


def phase(name: str) -> float:
    print(f"\n=== {name} ===", flush=True)
    return time.perf_counter()


def read_budget(run_dir: Path) -> dict:
    """What a budgeted stage chose (budget.json), or {} for a stage with a fixed max_steps."""
    path = run_dir / "budget.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def run_main_job(config: MainJobConfig) -> dict:
    job_start = time.perf_counter()
    run = Path(config.run_dir)
    run.mkdir(parents=True, exist_ok=True)
    save_config(config, run / "main_job.yaml")
    # With a budget the stages size themselves (max_steps=0), unless an override gives max_steps.
    budgeted = ["trainer.max_steps=0", "trainer.budget_minutes=1"] if config.budget_minutes > 0 else []
    # Load both stage configs first, so a typo stops the job before any training.
    vqgan_config = load_config(VQGANTrainConfig, config.vqgan_config, [
        f"run_dir={run / 'stage1'}", f"export_dir={run / 'tokenizer'}", *budgeted, *config.vqgan_overrides])
    d = vqgan_config.data  # every stage reads the same images, split the same way
    same_data = [f"data.root={d.root}", f"data.resolution={d.resolution}", f"data.val_fraction={d.val_fraction}",
                 f"data.split_seed={d.split_seed}"]
    gpt_config = load_config(GPTTrainConfig, config.gpt_config, [
        f"run_dir={run / 'stage2'}", f"export_dir={run / 'gpt'}", f"tokenizer={run / 'tokenizer'}", *same_data,
        *([f"condition.tokenizer={run / 'condition_tokenizer'}"] if config.condition_vqgan_config else []),
        *budgeted, *config.gpt_overrides])
    condition_config = None
    if config.condition_vqgan_config:
        cond = gpt_config.condition
        if cond.source != "image" or not cond.derive:
            raise ValueError("condition_vqgan_config needs gpt_overrides with condition.source=image and "
                             "condition.derive=<silhouette | grayscale | lowres>")
        condition_config = load_config(VQGANTrainConfig, config.condition_vqgan_config, [
            f"run_dir={run / 'stage0'}", f"export_dir={run / 'condition_tokenizer'}", f"data.derive={cond.derive}",
            *same_data, *budgeted, *config.condition_vqgan_overrides])
        gpt_config.model = dataclasses.replace(  # the sizes the conditioning tokenizer will have
            gpt_config.model, num_classes=0, cond_vocab_size=condition_config.model.quantizer.codebook_size,
            cond_grid_size=condition_config.model.grid_size, condition_derive=cond.derive)
    # The GPT's sizes follow the tokenizer about to be trained and the data's class folders.
    names = [] if gpt_config.condition.source != "class" else \
        scan_images(vqgan_config.data.root, vqgan_config.data.use_labels, check=False).class_names
    gpt_config.model = resolve_model_config(gpt_config.model, vqgan_config.model.quantizer.codebook_size,
                                            vqgan_config.model.grid_size, names, run / "tokenizer",
                                            vqgan_config.data.root)
    timings = {}
    training_deadline = fid = None
    if config.budget_minutes > 0:
        start = phase("timing the evaluation, to split the budget")
        fid = fid_metric(config.eval)  # loaded once: the evaluation uses it again
        eval_s = estimate_evaluation_seconds(vqgan_config.model, gpt_config.model, vqgan_config.data, config.eval, fid)
        training_deadline = job_start + config.budget_minutes * 60 - eval_s - END_MARGIN_S
        timings["evaluation_estimate_s"] = eval_s
        if condition_config is not None:
            condition_config.trainer.budget_minutes = CONDITION_SHARE * (training_deadline - time.perf_counter()) / 60
        print(f"evaluation estimated at {eval_s:.0f} s")

    if condition_config is not None:
        start = phase("stage 0: training the conditioning tokenizer on the condition images")
        fit_vqgan(condition_config)
        timings["stage0_s"] = time.perf_counter() - start
    if training_deadline is not None:
        vqgan_config.trainer.budget_minutes = STAGE1_SHARE * (training_deadline - time.perf_counter()) / 60
        print(f"stage 1 gets {vqgan_config.trainer.budget_minutes:.1f} min")

    start = phase("stage 1: training the VQGAN tokenizer")
    fit_vqgan(vqgan_config)
    timings["stage1_s"] = time.perf_counter() - start

    start = phase("stage 2: training the GPT on the tokenizer's codes")
    if training_deadline is not None:
        gpt_config.trainer.budget_minutes = max(0.5, (training_deadline - time.perf_counter()) / 60)
    fit_gpt(gpt_config)
    timings["stage2_s"] = time.perf_counter() - start

    start = phase("evaluation")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    gpt, tokenizer = load_generator(run / "gpt", device)
    result = evaluate(tokenizer, vqgan_config.data, config.eval, gpt, fid=fid,
                      condition_tokenizer=load_condition_tokenizer(run / "gpt", device))
    save_png(image_grid(paired_rows(result.reals, result.reconstructions, per_row=8), nrow=8), run / "reconstructions.png")
    per_row = config.samples_per_row
    if result.conditions is not None:  # each row of conditions above the samples drawn for them
        shown = 5 * per_row
        grid = paired_rows(result.conditions[:shown], result.samples[:shown], per_row)
    else:
        grid = samples_by_class(result.samples, result.sample_labels, per_row)
    save_png(image_grid(grid, nrow=per_row), run / "samples.png")
    if result.samples is not None:  # as numbers too, for a gFID computed elsewhere (eval.fid_weights=off)
        labels = result.sample_labels if result.conditions is None else None
        save_tensors({"samples": to_uint8(result.samples), "labels": labels}, run / "samples.safetensors")
    timings["evaluation_s"] = time.perf_counter() - start
    timings["total_s"] = time.perf_counter() - job_start
    metrics = {**result.metrics, "timings": timings, "budget_minutes": config.budget_minutes,
               "stage1_steps": vqgan_config.trainer.max_steps, "stage2_steps": gpt_config.trainer.max_steps,
               "stage1_budget": read_budget(run / "stage1"), "stage2_budget": read_budget(run / "stage2"),
               "device": torch.cuda.get_device_name() if device == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
               "machine": describe_machine(),
               "sample_rows": gpt.config.class_names,
               # peak resident memory of this process, and of the largest data-loader worker
               "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
               "peak_rss_mb_workers": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}
    write_metrics(metrics, run / "metrics.json", config.eval)

    print("\n" + format_table(metrics))
    print(f"\nreconstructions: {run / 'reconstructions.png'}\nsamples:         {run / 'samples.png'}"
          f"\nmetrics:         {run / 'metrics.json'}\nexports:         {run / 'tokenizer'}  {run / 'gpt'}")
    return metrics
