"""Train the stage-2 GPT on the codes of a stage-1 tokenizer.

    python scripts/train_transformer.py --config configs/transformer/emoji32.yaml tokenizer=runs/vqgan_emoji32/tokenizer

The dataset is tokenized once into a code cache (reused while nothing changes). Outputs go
to run_dir: checkpoints/last.ckpt (a rerun resumes), images/samples_*.png, config.yaml and
the export gpt/ (with a copy of the tokenizer: all that scripts/sample.py needs).
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from vqgan.errors import USER_ERRORS  # noqa: E402
from transformer.lightning import fit_gpt  # noqa: E402
from transformer.train_config import GPTTrainConfig  # noqa: E402
from vqgan.config import load_config  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="YAML file, e.g. configs/transformer/emoji32.yaml")
    parser.add_argument("overrides", nargs="*", help="key=value overrides, e.g. tokenizer=runs/x/tokenizer")
    args = parser.parse_args()
    try:
        export = fit_gpt(load_config(GPTTrainConfig, args.config, args.overrides))
    except USER_ERRORS as err:
        sys.exit(f"error: {err}")
    print(f"GPT exported to {export}")


if __name__ == "__main__":
    main()
