"""Quantizer ablation: train one tokenizer per configs/vqgan/ablation/*.yaml (layered on the
emoji32 config, everything else equal) for the same number of steps, evaluate each on the
validation split, and write a Markdown table, a JSON file and one reconstruction grid each.

    python scripts/ablation.py --steps 1500 --out docs/ablation
    python scripts/ablation.py steps=100 'variant_overrides=[data.batch_size=16]'
"""
import json
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from vqgan.cli import Alias, config_parser, load_script_config  # noqa: E402


@dataclass
class AblationConfig:
    base: str = "configs/vqgan/emoji32.yaml"  # the tokenizer config every variant is layered on
    variants: str = "configs/vqgan/ablation"  # folder of quantizer overlays (*.yaml)
    steps: int = 1500  # training batches per quantizer
    out: str = "docs/ablation"  # where the table, JSON and grids go
    lpips_weights: str = "weights/lpips"
    fid_weights: str = "weights/fid"
    variant_overrides: list[str] = field(default_factory=list)  # key=value overrides for every variant


ALIASES = [Alias("--base", "base"), Alias("--variants", "variants", "folder of quantizer overlays"),
           Alias("--steps", "steps", "training batches per quantizer"),
           Alias("--out", "out", "where the table, JSON and grids go"),
           Alias("--lpips-weights", "lpips_weights"), Alias("--fid-weights", "fid_weights")]

COLUMNS = [("quantizer", "{}"), ("codebook_usage", "{:.1%}"), ("perplexity", "{:.0f}"), ("psnr", "{:.2f}"),
           ("ssim", "{:.3f}"), ("lpips", "{:.4f}"), ("rfid", "{:.1f}"), ("step_s", "{:.3f}")]


def table(results: list[dict]) -> str:
    lines = ["| " + " | ".join(name for name, _ in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in results:
        lines.append("| " + " | ".join(fmt.format(r[name]) for name, fmt in COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    args = load_script_config(AblationConfig, config_parser(__doc__, ALIASES).parse_args())
    from transformer.eval_config import EvalConfig
    from transformer.evaluation import evaluate
    from vqgan.callbacks import StepTimer
    from vqgan.config import load_config
    from vqgan.io import atomic_write_text
    from vqgan.lightning import fit_vqgan
    from vqgan.model import VQGAN
    from vqgan.train_config import VQGANTrainConfig

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for variant in sorted(Path(args.variants).glob("*.yaml")):
        config = load_config(VQGANTrainConfig, [args.base, variant],
                             [f"trainer.max_steps={args.steps}", "trainer.progress_bar=false", *args.variant_overrides])
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
