"""Train the stage-1 VQGAN tokenizer.

    python scripts/train_vqgan.py --config configs/vqgan/emoji32.yaml run_dir=runs/t trainer.max_steps=20
    python scripts/train_vqgan.py --config configs/vqgan/emoji32.yaml --config configs/vqgan/ablation/ema.yaml

Any config key can be overridden as key=value (e.g. data.root=/path/to/images,
trainer.devices=8 trainer.strategy=ddp). Outputs go to run_dir: checkpoints/last.ckpt
(a rerun resumes from it), images/*.png, config.yaml and the export tokenizer/.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from vqgan.cli import config_parser, load_script_config  # noqa: E402


def main() -> None:
    args = config_parser(__doc__, config_required=True).parse_args()  # before torch loads: --help is instant
    from vqgan.train_config import VQGANTrainConfig
    from vqgan.lightning import fit_vqgan
    from vqgan.errors import USER_ERRORS

    config = load_script_config(VQGANTrainConfig, args)
    try:
        tokenizer = fit_vqgan(config)
    except USER_ERRORS as err:
        sys.exit(f"error: {err}")
    print(f"tokenizer exported to {tokenizer}")


if __name__ == "__main__":
    main()
