#!/usr/bin/env bash
# Rebuild data/pretrained/emoji32/ from scratch: a 4,000-batch tokenizer, then the main job with
# configs/main/pretrained.yaml (that tokenizer trained 6,000 batches more, then the class-conditional
# GPT, then evaluation), the exports packed in fp16, and the packed models evaluated as users get
# them. About two and a half hours on 2 CPU cores; see its MODEL_CARD.md. Rerunning resumes where
# it stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
RUN=runs/pretrained  # configs/main/pretrained.yaml names $RUN/tokenizer_4000
OUT=data/pretrained/emoji32
$PY scripts/train_vqgan.py --config configs/vqgan/emoji32.yaml run_dir="$RUN/stage1_4000" \
    export_dir="$RUN/tokenizer_4000" trainer.max_steps=4000 trainer.val_every=1000 trainer.image_every=1000
$PY scripts/main_job.py --config configs/main/pretrained.yaml run_dir="$RUN"
# The pack replaces $OUT whole; the card is a document of the repository, not of the export: keep it.
cp "$OUT/MODEL_CARD.md" "$RUN/MODEL_CARD.md"
$PY scripts/pack_pretrained.py "$RUN/gpt" "$OUT"
cp "$RUN/MODEL_CARD.md" "$OUT/MODEL_CARD.md"
$PY scripts/evaluate.py --model "$OUT" --data data/emoji --lpips-weights weights/lpips --fid-weights weights/fid \
    --num-samples 300 --cfg 2 --out "$OUT/metrics.json"
$PY scripts/sample.py --model "$OUT" --num 90 --cfg 2 --seed 0 --out "$OUT/samples.png"
