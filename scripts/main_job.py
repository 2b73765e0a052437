"""The main job: train the tokenizer and the GPT on the bundled emoji, evaluate, write grids.

    python scripts/main_job.py --config configs/main/cpu.yaml           (what `make demo` runs)
    python scripts/main_job.py --config configs/main/gpu.yaml           (longer, for a GPU)

Overrides apply to the job config, e.g. run_dir=runs/x eval.num_samples=100
'vqgan_overrides=[trainer.max_steps=50]'. A rerun resumes both stages from their checkpoints.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from vqgan.errors import USER_ERRORS  # noqa: E402
from transformer.main_job import MainJobConfig, run_main_job  # noqa: E402
from vqgan.config import load_config  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/main/cpu.yaml", help="job preset (configs/main/*.yaml)")
    parser.add_argument("overrides", nargs="*", help="key=value overrides of the job config")
    args = parser.parse_args()
    try:
        run_main_job(load_config(MainJobConfig, args.config, args.overrides))
    except USER_ERRORS as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main()
