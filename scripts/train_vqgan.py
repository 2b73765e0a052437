"""Train the stage-1 VQGAN tokenizer.

    python scripts/train_vqgan.py --config configs/vqgan/emoji32.yaml run_dir=runs/t trainer.max_steps=20
    python scripts/train_vqgan.py --config configs/vqgan/emoji32.yaml --config configs/vqgan/ablation/ema.yaml

Any config key can be overridden as key=value (e.g. data.root=/path/to/images,
trainer.devices=8 trainer.strategy=ddp). Outputs go to run_dir: checkpoints/last.ckpt
(a rerun resumes from it), images/*.png, config.yaml and the export tokenizer/.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from vqgan.errors import USER_ERRORS  # noqa: E402
from vqgan.config import load_config  # noqa: E402
from vqgan.lightning import fit_vqgan  # noqa: E402
from vqgan.train_config import VQGANTrainConfig  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, action="append",
                        help="YAML file, e.g. configs/vqgan/emoji32.yaml; repeat to layer files (later ones win)")
    parser.add_argument("overrides", nargs="*", help="key=value overrides")
    args = parser.parse_args()
    try:
        config = load_config(VQGANTrainConfig, args.config, args.overrides)
        tokenizer = fit_vqgan(config)
    except USER_ERRORS as err:
        sys.exit(f"error: {err}")
    print(f"tokenizer exported to {tokenizer}")


if __name__ == "__main__":
    main()
