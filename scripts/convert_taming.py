"""Convert a taming-transformers VQGAN or GumbelVQ checkpoint into a tokenizer folder.

    python scripts/convert_taming.py model.ckpt config.yaml out_dir

CKPT is taming's Lightning checkpoint (read with weights_only=True) or a .safetensors file
of its model tensors; CONFIG_YAML is the taming config it was trained with. The result
loads with `VQGAN.from_pretrained(out_dir)` and works with the GPT, sampler and evaluation.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from vqgan.errors import USER_ERRORS  # noqa: E402
from vqgan.convert import convert_taming  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="taming .ckpt or .safetensors")
    parser.add_argument("config", help="taming YAML config (model.target VQModel or GumbelVQ)")
    parser.add_argument("out_dir", help="tokenizer folder to write")
    args = parser.parse_args()
    try:
        model = convert_taming(args.checkpoint, args.config, args.out_dir)
    except USER_ERRORS as err:
        sys.exit(f"error: {err}")
    c = model.config
    print(f"wrote {args.out_dir}: {c.quantizer.kind} quantizer, {c.quantizer.codebook_size} codes of dimension "
          f"{c.embed_dim}, {c.resolution} px -> {c.grid_size}x{c.grid_size} grid")


if __name__ == "__main__":
    main()
