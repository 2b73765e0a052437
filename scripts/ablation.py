"""Quantizer ablation: train one tokenizer per configs/vqgan/ablation/*.yaml (layered on the
emoji32 config, everything else equal) for the same number of steps, evaluate each on the
validation split, and write a Markdown table, a JSON file and one reconstruction grid each.

    python scripts/ablation.py --steps 1500 --out docs/ablation
"""
import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from transformer.evaluation import EvalConfig, evaluate  # noqa: E402
from vqgan.callbacks import StepTimer  # noqa: E402
from vqgan.config import load_config  # noqa: E402
from vqgan.io import atomic_write_text  # noqa: E402
from vqgan.lightning import fit_vqgan  # noqa: E402
from vqgan.model import VQGAN  # noqa: E402
from vqgan.train_config import VQGANTrainConfig  # noqa: E402

COLUMNS = [("quantizer", "{}"), ("codebook_usage", "{:.1%}"), ("perplexity", "{:.0f}"), ("psnr", "{:.2f}"),
           ("ssim", "{:.3f}"), ("lpips", "{:.4f}"), ("rfid", "{:.1f}"), ("step_s", "{:.3f}")]


def table(results: list[dict]) -> str:
    lines = ["| " + " | ".join(name for name, _ in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in results:
        lines.append("| " + " | ".join(fmt.format(r[name]) for name, fmt in COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default="configs/vqgan/emoji32.yaml")
    parser.add_argument("--variants", default="configs/vqgan/ablation", help="folder of quantizer overlays")
    parser.add_argument("--steps", type=int, default=1500, help="training batches per quantizer")
    parser.add_argument("--out", default="docs/ablation", help="where the table, JSON and grids go")
    parser.add_argument("--lpips-weights", default="weights/lpips")
    parser.add_argument("--fid-weights", default="weights/fid")
    parser.add_argument("overrides", nargs="*", help="key=value overrides for every variant")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for variant in sorted(Path(args.variants).glob("*.yaml")):
        config = load_config(VQGANTrainConfig, [args.base, variant],
                             [f"trainer.max_steps={args.steps}", "trainer.progress_bar=false", *args.overrides])
        print(f"=== {variant.stem}: {args.steps} steps -> {config.run_dir}", flush=True)
        timer = StepTimer()
        tokenizer_dir = fit_vqgan(config, callbacks=[timer])
        evaluation = evaluate(VQGAN.from_pretrained(tokenizer_dir), config.data,
                              EvalConfig(lpips_weights=args.lpips_weights, fid_weights=args.fid_weights))
        result = {"quantizer": variant.stem, "steps": args.steps, "step_s": timer.median(), **evaluation.metrics}
        results.append(result)
        shutil.copy(Path(config.run_dir) / "images" / "reconstructions_last.png", out / f"{variant.stem}.png")
        atomic_write_text(out / "results.json", json.dumps(results, indent=2))  # keep what is done so far
        print(table(results), flush=True)
    atomic_write_text(out / "table.md", table(results))


if __name__ == "__main__":
    main()
