"""The main job: train the tokenizer and the GPT on the bundled emoji, evaluate, write grids.

    python scripts/main_job.py --config configs/main/cpu.yaml           (what `make demo` runs)
    python scripts/main_job.py --config configs/main/gpu.yaml           (longer, for a GPU)

Overrides apply to the job config, e.g. run_dir=runs/x eval.num_samples=100
'vqgan_overrides=[trainer.max_steps=50]'. A rerun resumes both stages from their checkpoints.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from vqgan.cli import config_parser, load_script_config  # noqa: E402


def main() -> None:
    args = config_parser(__doc__, default_config="configs/main/cpu.yaml").parse_args()  # before torch loads: --help is instant
    from transformer.main_job import MainJobConfig
    from transformer.main_job import run_main_job
    from vqgan.errors import USER_ERRORS

    config = load_script_config(MainJobConfig, args)
    try:
        run_main_job(config)
    except USER_ERRORS as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main()
