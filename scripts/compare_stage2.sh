#!/usr/bin/env bash
# The GPT against MaskGIT on the emoji (docs/maskgit.md): both trained over the codes of one
# tokenizer (TOK; docs/maskgit.md used runs/pretrained/tokenizer_4000, the first export of
# scripts/build_pretrained.sh) for the same number of batches (their steps cost the same: one
# pass over 65 tokens), then evaluated with the main job's protocol (300 class-balanced samples,
# CFG 2, gFID against the 379 validation images) and timed sampling 300 images.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-runs/compare}
STEPS=${STEPS:-600}
TOK=${TOK:-data/pretrained/emoji32/tokenizer}
# more overrides for both runs; the shifted comparison of docs/maskgit.md:
# STEPS=3000 EXTRA="codes.shift=2 optim.warmup_steps=200"
EXTRA=${EXTRA:-}
for KIND in gpt maskgit; do
    start=$(date +%s)
    $PY scripts/train_transformer.py --config configs/transformer/emoji32.yaml tokenizer=$TOK run_dir=$OUT/$KIND \
        model.kind=$KIND trainer.max_steps=$STEPS trainer.val_every=$STEPS trainer.image_every=0 trainer.progress_bar=false \
        $EXTRA
    echo "$KIND training_s $(( $(date +%s) - start ))" | tee -a $OUT/times.txt
    start=$(date +%s)
    $PY scripts/sample.py --model $OUT/$KIND/gpt --num 300 --cfg 2 --seed 0 --batch-size 50 --out $OUT/$KIND-samples300.png
    echo "$KIND sampling_300_s $(( $(date +%s) - start ))" | tee -a $OUT/times.txt
    $PY scripts/evaluate.py --model $OUT/$KIND/gpt --num-samples 300 --cfg 2 --out $OUT/$KIND-metrics.json
    $PY scripts/sample.py --model $OUT/$KIND/gpt --num 90 --cfg 2 --seed 0 --out $OUT/$KIND-grid.png
done
