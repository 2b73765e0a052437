"""Measure a tokenizer (PSNR, SSIM, LPIPS, rFID, codebook usage) and optionally a GPT (gFID).

    python scripts/evaluate.py --tokenizer runs/vqgan_emoji32/tokenizer --data data/emoji --out metrics.json
    python scripts/evaluate.py --model runs/gpt_emoji32/gpt --data data/emoji --num-samples 300 --cfg 2

The validation split is the one training used (same --val-fraction and --split-seed).
Prints a table and writes the numbers, with the sample counts, as JSON.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from vqgan.errors import USER_ERRORS  # noqa: E402
import torch  # noqa: E402

from transformer.evaluation import EvalConfig, evaluate, format_table, write_metrics  # noqa: E402
from transformer.generator import load_generator  # noqa: E402
from vqgan.data import DataConfig  # noqa: E402
from vqgan.model import VQGAN  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--tokenizer", help="tokenizer export folder")
    source.add_argument("--model", help="GPT export folder (its tokenizer/ is evaluated too)")
    p.add_argument("--data", default="data/emoji", help="image folder")
    p.add_argument("--split", choices=["val", "all"], default="val")
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument("--no-labels", action="store_true", help="the folder has no class subfolders")
    p.add_argument("--lpips-net", choices=["alex", "vgg"], default="alex")
    p.add_argument("--lpips-weights", default="", help="path (default: $VQGAN_LPIPS_WEIGHTS)")
    p.add_argument("--fid-weights", default="", help="path or 'torch-fidelity' (default: $VQGAN_FID_WEIGHTS)")
    p.add_argument("--num-samples", type=int, default=300, help="gFID samples (with --model)")
    p.add_argument("--cfg", type=float, default=2.0, help="guidance scale for the samples (0: none)")
    p.add_argument("--top-k", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="metrics.json")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args()
    try:
        if args.model:
            gpt, tokenizer = load_generator(args.model, args.device)
        else:
            gpt, tokenizer = None, VQGAN.from_pretrained(args.tokenizer, args.device)
        resolution = tokenizer.config.resolution
        data = DataConfig(root=args.data, resolution=resolution, use_labels=not args.no_labels,
                          val_fraction=args.val_fraction, split_seed=args.split_seed)
        config = EvalConfig(split=args.split, batch_size=args.batch_size, lpips_net=args.lpips_net,
                            lpips_weights=args.lpips_weights, fid_weights=args.fid_weights,
                            num_samples=args.num_samples, cfg_scale=args.cfg, top_k=args.top_k, seed=args.seed)
        result = evaluate(tokenizer, data, config, gpt)
    except USER_ERRORS as err:
        sys.exit(f"error: {err}")
    write_metrics(result.metrics, args.out, config)
    print(format_table(result.metrics))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
