"""Measure a tokenizer (PSNR, SSIM, LPIPS, rFID, codebook usage) and optionally a GPT (gFID).

    python scripts/evaluate.py --tokenizer runs/vqgan_emoji32/tokenizer --data data/emoji --out metrics.json
    python scripts/evaluate.py --model runs/gpt_emoji32/gpt --data data/emoji --num-samples 300 --cfg 2

The validation split is the one training used (same --val-fraction and --split-seed).
Prints a table and writes the numbers, with the sample counts, as JSON.
"""
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from transformer.eval_config import EvalConfig  # noqa: E402
from vqgan.cli import Alias, config_parser, load_script_config  # noqa: E402


@dataclass
class EvaluateScriptConfig(EvalConfig):
    tokenizer: str = ""  # a tokenizer export folder, or:
    model: str = ""  # a GPT export folder (its tokenizer/ is evaluated too)
    data: str = "data/emoji"  # image folder
    use_labels: bool = True  # false: the folder has no class subfolders
    val_fraction: float = 0.1  # the split training used
    split_seed: int = 0
    out: str = "metrics.json"
    device: str = "auto"  # "auto": cuda if visible, else cpu
    # where scripts/prepare_lpips_weights.py and prepare_fid_weights.py write ("": the environment variable)
    lpips_weights: str = "weights/lpips"
    fid_weights: str = "weights/fid"

    section = ""  # the keys are top-level here


ALIASES = [
    Alias("--tokenizer", "tokenizer", "tokenizer export folder"),
    Alias("--model", "model", "GPT export folder (its tokenizer/ is evaluated too)"),
    Alias("--data", "data", "image folder (default: data/emoji)"),
    Alias("--split", "split", "val (the training split's held-out images), train or all"),
    Alias("--val-fraction", "val_fraction"),
    Alias("--split-seed", "split_seed"),
    Alias("--no-labels", "use_labels", "the folder has no class subfolders", const="false"),
    Alias("--lpips-net", "lpips_net", "alex or vgg"),
    Alias("--lpips-weights", "lpips_weights", "LPIPS weights folder (default: weights/lpips)"),
    Alias("--fid-weights", "fid_weights", "Inception file or folder, 'torch-fidelity' or 'off' (default: weights/fid)"),
    Alias("--num-samples", "num_samples", "gFID samples (with --model)"),
    Alias("--floors", "floors", "also the FIDs of as many real images of the other split and of their "
          "reconstructions: how low gFID can go; per class, the gFID with that class's samples replaced by "
          "those reconstructions", const="true"),
    Alias("--cfg", "cfg_scale", "guidance scale for the samples (0: none)"),
    Alias("--top-k", "top_k", "0: off"),
    Alias("--top-p", "top_p", "1: off"),
    Alias("--temperature", "temperature"),
    Alias("--batch-size", "batch_size"),
    Alias("--seed", "seed"),
    Alias("--out", "out", "JSON file to write"),
    Alias("--device", "device", "cuda, cpu, ... (default: cuda if visible)"),
]


def main() -> None:
    args = config_parser(__doc__, ALIASES).parse_args()  # before torch loads: --help is instant
    config = load_script_config(EvaluateScriptConfig, args)

    import torch

    from transformer.evaluation import evaluate, format_table, write_metrics
    from transformer.generator import load_condition_tokenizer, load_generator
    from vqgan.data import DataConfig
    from vqgan.errors import USER_ERRORS
    from vqgan.model import VQGAN

    device = config.device if config.device != "auto" else "cuda" if torch.cuda.is_available() else "cpu"
    try:
        if bool(config.model) == bool(config.tokenizer):
            raise ValueError("give exactly one of --model <GPT export> and --tokenizer <tokenizer export>")
        if config.model:
            gpt, tokenizer = load_generator(config.model, device)
        else:
            gpt, tokenizer = None, VQGAN.from_pretrained(config.tokenizer, device)
        data = DataConfig(root=config.data, resolution=tokenizer.config.resolution, use_labels=config.use_labels,
                          val_fraction=config.val_fraction, split_seed=config.split_seed)
        condition_tokenizer = load_condition_tokenizer(config.model, device) if config.model else None
        result = evaluate(tokenizer, data, config, gpt, condition_tokenizer=condition_tokenizer)
    except USER_ERRORS as err:
        sys.exit(f"error: {err}")
    write_metrics(result.metrics, config.out, config)
    print(format_table(result.metrics))
    print(f"wrote {config.out}")


if __name__ == "__main__":
    main()
