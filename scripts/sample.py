"""Sample an image grid from a GPT export (scripts/train_transformer.py writes one).

    python scripts/sample.py --model runs/gpt_emoji32/gpt --num 64 --classes 0,3 --cfg 2.0 --top-k 100 --seed 0 --out grid.png
    python scripts/sample.py model=runs/gpt_emoji32/gpt num=64 classes=[0,3] cfg_scale=2.0   # the same, as keys
    python scripts/sample.py --model data/pretrained/emoji32 --num 18 --grid 8x24 --out wide.png   # 32 x 96 px

Class-conditional models give one row per class (all classes when --classes is not
given); the class names are saved beside the grid as <out>.json.
"""
import json
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from transformer.sampling_config import SamplingConfig  # noqa: E402
from vqgan.cli import Alias, comma_list, config_parser, load_script_config  # noqa: E402


@dataclass
class SampleScriptConfig(SamplingConfig):
    model: str = ""  # GPT export folder (holds config.json and tokenizer/); required
    num: int = 64  # images, split evenly over the classes
    out: str = "samples.png"  # PNG grid to write; its row labels go beside it as <out>.json
    classes: list[int] = field(default_factory=list)  # class ids, one row each; []: all classes
    batch_size: int = 64
    save_individual: str = ""  # also write each image as <folder>/<n>.png
    grid: list[int] = field(default_factory=list)  # [height, width] in codes, e.g. [8, 24]; []: the training grid
    condition_images: list[str] = field(default_factory=list)  # image-conditional models: files or folders
    device: str = "auto"  # "auto": cuda if visible, else cpu

    section = ""  # the keys are top-level here


ALIASES = [
    Alias("--model", "model", "GPT export folder (holds config.json and tokenizer/)"),
    Alias("--num", "num", "number of images (split evenly over the classes)"),
    Alias("--out", "out", "PNG grid to write"),
    Alias("--classes", "classes", "comma-separated class ids, e.g. 0,3 (default: all)", to_value=comma_list),
    Alias("--cfg", "cfg_scale", "classifier-free guidance scale (0: none; default 2)"),
    Alias("--top-k", "top_k", "sample among the k most likely codes (0: all)"),
    Alias("--top-p", "top_p", "nucleus sampling threshold in (0, 1] (1: off)"),
    Alias("--temperature", "temperature"),
    Alias("--seed", "seed"),
    Alias("--batch-size", "batch_size"),
    Alias("--save-individual", "save_individual", "also write each image as DIR/<n>.png"),
    Alias("--grid", "grid", "code grid HxW larger than the training grid, e.g. 8x24 (sliding window; GPT only)",
          to_value=lambda text: comma_list(text.lower().replace("x", ","))),
    Alias("--device", "device", "cuda, cpu, ... (default: cuda if visible)"),
    Alias("--condition-images", "condition_images", "image-conditional models: condition images, a folder or "
          "comma-separated files; one row each, the condition first", to_value=comma_list),
]


MAX_IMAGES = 100_000  # all are held in memory before the grid is written


def check_output(out: Path) -> None:
    """Before any sampling: a .png in a folder that exists (or can be made) and can be written."""
    if out.suffix.lower() != ".png":  # its metadata goes beside it, as <out>.json
        raise ValueError(f"--out must name a .png file, got '{out}'")
    folder = next((p for p in [out.parent, *out.parent.parents] if p.exists()), Path("."))
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        raise ValueError(f"--out {out}: {folder} is not a writable folder")


def class_list(ids: list[int], num_classes: int) -> list[int] | None:
    if num_classes == 0:
        if ids:
            raise ValueError("--classes given, but this model is unconditional")
        return None
    if not ids:
        return list(range(num_classes))
    bad = [c for c in ids if not 0 <= c < num_classes]
    if bad:
        raise ValueError(f"class ids {bad} out of range: this model has classes 0..{num_classes - 1}")
    return ids


def main() -> None:
    args = config_parser(__doc__, ALIASES).parse_args()  # before torch loads: --help is instant
    config = load_script_config(SampleScriptConfig, args)

    import torch

    from transformer.generator import load_condition_tokenizer, load_generator
    from vqgan.condition_images import condition_files, load_condition_images
    from transformer.sampling import check_sampling_args, sample_images
    from vqgan.errors import USER_ERRORS
    from vqgan.images import condition_rows, image_grid, save_png, to_uint8
    from vqgan.io import atomic_write_text

    device = config.device if config.device != "auto" else "cuda" if torch.cuda.is_available() else "cpu"
    try:
        if not config.model:
            raise ValueError("no model given: pass --model <GPT export folder> (or model=...)")
        if config.num < 1 or config.batch_size < 1:
            raise ValueError("--num and --batch-size must be positive")
        check_output(Path(config.out))
        if config.num > MAX_IMAGES:
            raise ValueError(f"--num {config.num} is more than {MAX_IMAGES:,} images; sample in several runs")
        if torch.device(device).type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"--device {device} but no CUDA GPU is visible here; use --device cpu")
        gpt, tokenizer = load_generator(config.model, device)
        options = config.generate_options(gpt.config)
        check_sampling_args(gpt, **options)
        classes = class_list(config.classes, gpt.config.num_classes)
        if config.grid and len(config.grid) != 2:
            raise ValueError(f"--grid takes HxW (two numbers), got {config.grid}")
        files = shown = None
        if gpt.config.image_conditional != bool(config.condition_images):
            raise ValueError("this model is image-conditional: pass --condition-images <folder or files>"
                             if gpt.config.image_conditional else "--condition-images given, but this model "
                             "is not image-conditional")
        if config.condition_images:
            files = condition_files(config.condition_images)
            shown = load_condition_images(files, tokenizer.config.resolution, gpt.config.condition_derive)
            condition_codes = load_condition_tokenizer(config.model, device).encode(shown)  # (N, h, w)
        groups = len(files) if files else len(classes) if classes else 0
        per_row = math.ceil(config.num / groups) if groups else min(config.num, 8)
        labels = None
        if files:
            labels = condition_codes.repeat_interleave(per_row, dim=0)  # (N * per_row, h, w)
        elif classes:
            labels = torch.tensor(classes).repeat_interleave(per_row)
        total = len(labels) if labels is not None else config.num
        # the grid's own checks (at least the training grid, a GPT) stop here, before any sampling
        images = sample_images(gpt, tokenizer, labels, total, config.batch_size, seed=config.seed, progress=True,
                               grid=config.grid or None, **options)
    except USER_ERRORS as err:
        sys.exit(f"error: {err}")

    out = Path(config.out)
    if files:
        save_png(image_grid(condition_rows(shown, images, per_row), nrow=per_row + 1), out)
        rows = [{"row": i, "condition": str(f)} for i, f in enumerate(files)]
    else:
        save_png(image_grid(images, nrow=per_row), out)
        names = gpt.config.class_names
        rows = [{"row": i, "class_id": c, "class_name": names[c] if names else str(c)}
                for i, c in enumerate(classes or [])]
    atomic_write_text(out.with_suffix(".json"), json.dumps(
        {"model": str(config.model), "rows": rows, "per_row": per_row, **options, "seed": config.seed}, indent=1))
    if config.save_individual:
        folder = Path(config.save_individual)
        folder.mkdir(parents=True, exist_ok=True)
        for i, image in enumerate(to_uint8(images)):
            save_png(image, folder / f"{i:05d}.png")
    print(f"wrote {out} ({len(images)} images)")


if __name__ == "__main__":
    main()
