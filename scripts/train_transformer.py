"""Train the stage-2 GPT on the codes of a stage-1 tokenizer.

    python scripts/train_transformer.py --config configs/transformer/emoji32.yaml tokenizer=runs/vqgan_emoji32/tokenizer

The dataset is tokenized once into a code cache (reused while nothing changes). Outputs go
to run_dir: checkpoints/last.ckpt (a rerun resumes), images/samples_*.png, config.yaml and
the export gpt/ (with a copy of the tokenizer: all that scripts/sample.py needs).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from vqgan.cli import config_parser, load_script_config  # noqa: E402


def main() -> None:
    args = config_parser(__doc__, config_required=True).parse_args()  # before torch loads: --help is instant
    from transformer.train_config import GPTTrainConfig
    from transformer.lightning import fit_gpt
    from vqgan.errors import USER_ERRORS

    config = load_script_config(GPTTrainConfig, args)
    try:
        export = fit_gpt(config)
    except USER_ERRORS as err:
        sys.exit(f"error: {err}")
    print(f"GPT exported to {export}")


if __name__ == "__main__":
    main()
