"""Sample an image grid from a GPT export (scripts/train_transformer.py writes one).

    python scripts/sample.py --model runs/gpt_emoji32/gpt --num 64 --classes 0,3 --cfg 2.0 --top-k 100 --seed 0 --out grid.png

Class-conditional models give one row per class (all classes when --classes is not
given); the class names are saved beside the grid as <out>.json.
"""
import argparse
import json
import math
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from vqgan.errors import USER_ERRORS  # noqa: E402
import torch  # noqa: E402

from transformer.generator import load_generator  # noqa: E402
from transformer.sampling import check_sampling_args, sample_images, sampling_options  # noqa: E402
from vqgan.images import image_grid, save_png, to_uint8  # noqa: E402
from vqgan.io import atomic_write_text  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="GPT export folder (holds config.json and tokenizer/)")
    parser.add_argument("--num", type=int, default=64, help="number of images (split evenly over the classes)")
    parser.add_argument("--out", default="samples.png", help="PNG grid to write")
    parser.add_argument("--classes", help="comma-separated class ids, e.g. 0,3 (default: all)")
    parser.add_argument("--cfg", type=float, default=2.0,
                        help="classifier-free guidance scale for class-conditional models (0: none; default 2)")
    parser.add_argument("--top-k", type=int, default=0, help="sample among the k most likely codes (0: all)")
    parser.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling threshold in (0, 1] (1: off)")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--save-individual", metavar="DIR", help="also write each image as DIR/<n>.png")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    return parser.parse_args()


MAX_IMAGES = 100_000  # all are held in memory before the grid is written


def check_output(out: Path) -> None:
    """Before any sampling: a .png in a folder that exists (or can be made) and can be written."""
    if out.suffix.lower() != ".png":  # its metadata goes beside it, as <out>.json
        raise ValueError(f"--out must name a .png file, got '{out}'")
    folder = next((p for p in [out.parent, *out.parent.parents] if p.exists()), Path("."))
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        raise ValueError(f"--out {out}: {folder} is not a writable folder")


def class_list(args, num_classes: int) -> list[int] | None:
    if num_classes == 0:
        if args.classes:
            raise ValueError("--classes given, but this model is unconditional")
        return None
    if not args.classes:
        return list(range(num_classes))
    try:
        ids = [int(c) for c in args.classes.split(",")]
    except ValueError:
        raise ValueError(f"--classes must be comma-separated integers, got '{args.classes}'") from None
    bad = [c for c in ids if not 0 <= c < num_classes]
    if bad:
        raise ValueError(f"class ids {bad} out of range: this model has classes 0..{num_classes - 1}")
    return ids


def main() -> None:
    args = parse_args()
    try:
        if args.num < 1 or args.batch_size < 1:
            raise ValueError("--num and --batch-size must be positive")
        check_output(Path(args.out))
        if not 0 <= args.seed < 2**63:
            raise ValueError(f"--seed must be in [0, 2**63), got {args.seed}")
        if args.num > MAX_IMAGES:
            raise ValueError(f"--num {args.num} is more than {MAX_IMAGES:,} images; sample in several runs")
        if torch.device(args.device).type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"--device {args.device} but no CUDA GPU is visible here; use --device cpu")
        gpt, tokenizer = load_generator(args.model, args.device)
        if not args.cfg >= 0 or args.top_k < 0:  # the same conventions as the configs' sample / eval sections
            raise ValueError(f"--cfg must be >= 0 and --top-k >= 0, got {args.cfg} and {args.top_k}")
        options = sampling_options(gpt.config.num_classes > 0, args.cfg, args.top_k, args.top_p, args.temperature)
        check_sampling_args(gpt, **options)
        classes = class_list(args, gpt.config.num_classes)
    except USER_ERRORS as err:
        sys.exit(f"error: {err}")

    per_row = math.ceil(args.num / len(classes)) if classes else min(args.num, 8)
    labels = torch.tensor(classes).repeat_interleave(per_row) if classes else None
    total = labels.numel() if classes else args.num
    images = sample_images(gpt, tokenizer, labels, total, args.batch_size, seed=args.seed, progress=True, **options)

    out = Path(args.out)
    save_png(image_grid(images, nrow=per_row), out)
    names = gpt.config.class_names
    rows = [{"row": i, "class_id": c, "class_name": names[c] if names else str(c)} for i, c in enumerate(classes or [])]
    atomic_write_text(out.with_suffix(".json"), json.dumps(
        {"model": str(args.model), "rows": rows, "per_row": per_row, **options, "seed": args.seed}, indent=1))
    if args.save_individual:
        folder = Path(args.save_individual)
        folder.mkdir(parents=True, exist_ok=True)
        for i, image in enumerate(to_uint8(images)):
            save_png(image, folder / f"{i:05d}.png")
    print(f"wrote {out} ({len(images)} images)")


if __name__ == "__main__":
    main()
