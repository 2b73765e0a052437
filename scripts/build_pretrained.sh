#!/usr/bin/env bash
# Rebuild one of the shipped models from scratch: `bash scripts/build_pretrained.sh [emoji32 | emoji32_f2]`
# (default emoji32_f2). Each trains with fixed batch counts (the same run on every machine), packs the
# GPT export in fp16 into data/pretrained/<name>/ (its MODEL_CARD.md is kept), evaluates the packed
# files as users get them and writes the card's sample grid. Rerunning resumes where it stopped.
#   emoji32_f2: a 16 x 16 tokenizer (3,000 batches), then its GPT: 1,200 batches, resumed to 2,400,
#               then 600 class-balanced batches with a moving average of the weights; about three
#               and a half hours on 2 CPU cores.
#   emoji32:    an 8 x 8 tokenizer (4,000 batches), then the main job with configs/main/pretrained.yaml
#               (that tokenizer 6,000 batches more, then the GPT); about two and a half hours.
# See each folder's MODEL_CARD.md.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
NAME=${1:-emoji32_f2}
OUT=data/pretrained/$NAME
case "$NAME" in
emoji32_f2)
    RUN=runs/pretrained_f2
    $PY scripts/train_vqgan.py --config configs/vqgan/emoji32.yaml --config configs/vqgan/emoji32_f2.yaml \
        run_dir="$RUN/stage1" export_dir="$RUN/tokenizer"
    GPT=(--config configs/transformer/emoji32.yaml --config configs/transformer/emoji32_f2.yaml tokenizer="$RUN/tokenizer")
    # Each phase is skipped once its export exists: a rerun resumes the phase that stopped.
    [ -f "$RUN/gpt_1200/config.json" ] || $PY scripts/train_transformer.py "${GPT[@]}" \
        run_dir="$RUN/stage2" export_dir="$RUN/gpt_1200"
    [ -f "$RUN/gpt_2400/config.json" ] || $PY scripts/train_transformer.py "${GPT[@]}" \
        run_dir="$RUN/stage2" export_dir="$RUN/gpt_2400" trainer.max_steps=2400
    # From batch 2,400 (its last checkpoint) in a run folder of its own: every class drawn equally
    # often for 600 batches, exported as the moving average of the weights.
    FROM=()
    [ -f "$RUN/stage2_balanced/checkpoints/last.ckpt" ] || FROM=(resume="$RUN/stage2/checkpoints/last.ckpt")
    $PY scripts/train_transformer.py "${GPT[@]}" run_dir="$RUN/stage2_balanced" export_dir="$RUN/gpt" "${FROM[@]}" \
        codes.cache_dir="$RUN/stage2/codes" data.balance_classes=true ema_decay=0.995 trainer.max_steps=3000
    ;;
emoji32)
    RUN=runs/pretrained  # configs/main/pretrained.yaml names $RUN/tokenizer_4000
    $PY scripts/train_vqgan.py --config configs/vqgan/emoji32.yaml run_dir="$RUN/stage1_4000" \
        export_dir="$RUN/tokenizer_4000" trainer.max_steps=4000 trainer.val_every=1000 trainer.image_every=1000
    $PY scripts/main_job.py --config configs/main/pretrained.yaml run_dir="$RUN"
    ;;
*)
    echo "usage: $0 [emoji32 | emoji32_f2]" >&2
    exit 2
    ;;
esac
# The pack replaces $OUT whole; the card is a document of the repository, not of the export: keep it.
cp "$OUT/MODEL_CARD.md" "$RUN/MODEL_CARD.md"
$PY scripts/pack_pretrained.py "$RUN/gpt" "$OUT"
cp "$RUN/MODEL_CARD.md" "$OUT/MODEL_CARD.md"
$PY scripts/evaluate.py --model "$OUT" --data data/emoji --lpips-weights weights/lpips --fid-weights weights/fid \
    --num-samples 300 --cfg 2 --floors --out "$OUT/metrics.json"
$PY scripts/sample.py --model "$OUT" --num 90 --cfg 2 --seed 0 --out "$OUT/samples.png"
