"""Write the README's results section from one run of the main job (what `make demo` ran):
copies its grids and metrics.json into docs/ and regenerates the block between the
`results:begin` / `results:end` markers, so that no number there is typed by hand.

    python scripts/readme_results.py runs/demo
"""
import argparse
import json
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


def minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {int(round(seconds % 60))} s"


def section(m: dict) -> str:
    machine, t = m["machine"], m["timings"]
    bf16 = "native bf16" if machine["cpu_native_bf16"] else "no native bf16, so fp32 throughout"
    s1, s2 = m.get("stage1_budget", {}), m.get("stage2_budget", {})
    per_batch = lambda b: f", {b['seconds_per_batch']:.2f} s each as timed at the start" if b else ""  # noqa: E731
    rows = [("PSNR", f"{m['psnr']:.2f} dB", f"mean over {m['num_images']} images and their reconstructions"),
            ("SSIM", f"{m['ssim']:.3f}", "torchmetrics, same pairs"),
            ("LPIPS (AlexNet)", f"{m['lpips']:.4f}", "same pairs"),
            ("rFID", f"{m['rfid']:.1f}", f"{m['num_images']} images against their reconstructions"),
            ("codebook usage / perplexity", f"{m['codebook_usage']:.0%} / {m['perplexity']:.0f}",
             f"codes of the {m['num_images']} images, {m['codebook_size']}-code codebook"),
            ("gFID", f"{m['gfid']:.1f}", f"{m['gfid_counts']['generated']} class-balanced samples "
                                         f"(CFG {m['sampling']['cfg_scale']:g}) against the {m['num_images']} images")]
    table = "\n".join(f"| {a} | {b} | {c} |" for a, b, c in rows)
    return f"""### What `make demo` did here

On {machine['threads']} CPU threads of an {machine['cpu']} ({machine['cpu_capability']}, {bf16}), torch
{machine['torch']}, the main job with `budget_minutes={m['budget_minutes']:g}` took **{minutes(t['total_s'])}**
(install excluded): the evaluation was timed first ({t.get('evaluation_estimate_s', 0):.0f} s expected), then
stage 1 trained {m['stage1_steps']:,} batches in {t['stage1_s']:.0f} s{per_batch(s1)}, stage 2
{m['stage2_steps']:,} batches in {t['stage2_s']:.0f} s{per_batch(s2)}, and the evaluation took
{t['evaluation_s']:.0f} s. Peak memory {m['peak_rss_mb']:,.0f} MB. Validation split: {m['num_images']} images,
never trained on by either stage.

| metric (validation split) | this run | how |
|---|---:|---|
{table}

Validation images (upper row of each pair) over their reconstructions:

![reconstructions](docs/main_job_reconstructions.png)

Samples, one row per category ({', '.join(n.replace('_', ' & ') for n in m['sample_rows'])}):

![samples](docs/main_job_samples.png)

`docs/main_job_metrics.json` holds every number with its sample counts and the machine."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", nargs="?", default="runs/demo", help="run folder of the main job")
    args = parser.parse_args()
    run = Path(args.run)
    metrics = json.loads((run / "metrics.json").read_text())
    shutil.copy(run / "metrics.json", REPO / "docs" / "main_job_metrics.json")
    shutil.copy(run / "reconstructions.png", REPO / "docs" / "main_job_reconstructions.png")
    shutil.copy(run / "samples.png", REPO / "docs" / "main_job_samples.png")
    readme = (REPO / "README.md").read_text()
    head, rest = readme.split(BEGIN)
    _, tail = rest.split(END)
    (REPO / "README.md").write_text(f"{head}{BEGIN}\n{section(metrics)}\n{END}{tail}")
    print("README.md results section and docs/main_job_* updated")


if __name__ == "__main__":
    main()
