#!/usr/bin/env bash
# GPU check for a machine with CUDA (one run, under 8 minutes): the test suite, then the
# benchmark at 64 px (emoji64) and at 256 px (f16 tokenizer, 16x16 grid, ~100M GPT).
# Results go under $OUT (default: gpu_check/). Needs the installed environment and weights/
# (scripts/prepare_*_weights.py), e.g. carried along to the GPU machine.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_check}
mkdir -p "$OUT"
PY=${PY:-python3}
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
VQGAN_LPIPS_WEIGHTS=weights/lpips VQGAN_FID_WEIGHTS=weights/fid timeout 240 $PY -m pytest -q -x tests \
    > "$OUT/tests.log" 2>&1; echo "tests exit $?" >> "$OUT/tests.log"
timeout 120 $PY scripts/bench.py --repeats 3 --vqgan-config configs/vqgan/emoji64.yaml \
    --gpt-config configs/transformer/emoji64.yaml --out "$OUT/bench_64.json" 2> "$OUT/bench_64.log"
timeout 120 $PY scripts/bench.py --repeats 3 --vqgan-config configs/vqgan/f16_256.yaml \
    --gpt-config configs/transformer/gpt100m_256.yaml --phases sampling_small,sampling_medium,gpt_forward,tokenizer,gpt_training,vqgan_training \
    --out "$OUT/bench_256.json" 2> "$OUT/bench_256.log"
ls -l "$OUT"
