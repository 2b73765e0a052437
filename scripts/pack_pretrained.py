"""Pack a GPT export (with its tokenizer) compactly: every floating-point weight in fp16, the
layout unchanged, so `load_generator` and `VQGAN.from_pretrained` load it into fp32 models.

    python scripts/pack_pretrained.py runs/pretrained/gpt data/pretrained/emoji32
"""
import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import torch  # noqa: E402

from transformer.generator import load_generator  # noqa: E402
from vqgan.errors import USER_ERRORS  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="GPT export folder (config.json, model.safetensors, tokenizer/)")
    parser.add_argument("out", help="folder to write (replaced whole)")
    args = parser.parse_args()
    try:
        gpt, tokenizer = load_generator(args.source, "cpu", torch.float32)
    except USER_ERRORS as err:
        sys.exit(f"error: {err}")
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer.half().save_pretrained(Path(tmp) / "tokenizer")
        gpt.half().save_pretrained(args.out, tokenizer_dir=Path(tmp) / "tokenizer")
    size = sum(p.stat().st_size for p in Path(args.out).rglob("*") if p.is_file())
    print(f"wrote {args.out} ({size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
