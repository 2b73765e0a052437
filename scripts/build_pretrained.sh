#!/usr/bin/env bash
# Rebuild data/pretrained/emoji32/ from scratch: the main job with configs/main/pretrained.yaml
# (tokenizer, then class-conditional GPT, then evaluation), the exports packed in fp16, and the
# packed models evaluated as users get them. About an hour on 2 CPU cores; see its MODEL_CARD.md.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
RUN=${RUN:-runs/pretrained}
OUT=data/pretrained/emoji32
$PY scripts/main_job.py --config configs/main/pretrained.yaml run_dir="$RUN"
$PY scripts/pack_pretrained.py "$RUN/gpt" "$OUT"
$PY scripts/evaluate.py --model "$OUT" --data data/emoji --lpips-weights weights/lpips --fid-weights weights/fid \
    --num-samples 300 --cfg 2 --out "$OUT/metrics.json"
$PY scripts/sample.py --model "$OUT" --num 90 --cfg 2 --seed 0 --out "$OUT/samples.png"
