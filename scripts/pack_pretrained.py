"""Pack a GPT export (with its tokenizer) compactly: every floating-point weight in fp16, the
layout unchanged, so `load_generator` and `VQGAN.from_pretrained` load it into fp32 models.

    python scripts/pack_pretrained.py runs/pretrained/gpt data/pretrained/emoji32

--tokenizer puts another tokenizer in the export in place of the GPT's own, provided it gives
the same codes (equal encoder and codebook weights), as a decoder fine-tune (decoder_only=true) does.
"""
import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import torch  # noqa: E402

from transformer.generator import load_generator  # noqa: E402
from vqgan import VQGAN  # noqa: E402
from vqgan.errors import USER_ERRORS  # noqa: E402


def same_codes_tokenizer(trained_on: VQGAN, directory: str) -> VQGAN:
    """The tokenizer in `directory`, refused unless its code weights equal those of the tokenizer
    the GPT was trained on (compared in fp32: an fp16 export upcast counts as equal)."""
    replacement = VQGAN.from_pretrained(directory)
    ours, theirs = trained_on.code_weights(), replacement.code_weights()
    differing = sorted(k for k in ours if k not in theirs or not torch.equal(ours[k].float(), theirs[k].float()))
    if differing:
        raise ValueError(f"--tokenizer {directory} gives other codes than the GPT was trained on "
                         f"(differs in {', '.join(differing[:3])}{' ...' if len(differing) > 3 else ''}); "
                         "only a decoder fine-tune (decoder_only=true) of its tokenizer can replace it")
    return replacement


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="GPT export folder (config.json, model.safetensors, tokenizer/)")
    parser.add_argument("out", help="folder to write (replaced whole)")
    parser.add_argument("--tokenizer", help="a tokenizer export with the same codes, to ship instead of the GPT's own")
    args = parser.parse_args()
    try:
        gpt, tokenizer = load_generator(args.source, "cpu", torch.float32)
        if args.tokenizer:
            tokenizer = same_codes_tokenizer(tokenizer, args.tokenizer)
    except USER_ERRORS as err:
        sys.exit(f"error: {err}")
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer.half().save_pretrained(Path(tmp) / "tokenizer")
        gpt.half().save_pretrained(args.out, tokenizer_dir=Path(tmp) / "tokenizer")
    size = sum(p.stat().st_size for p in Path(args.out).rglob("*") if p.is_file())
    print(f"wrote {args.out} ({size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
