#!/usr/bin/env bash
# The GPU check: one command on one CUDA GPU, 12 minutes at most (each step has its own time limit;
# expected well under that, not measured). It runs the tests of the GPU paths
# (bf16 training of every quantizer, the GAN and the GPT; CUDA-graph sampling; device placement)
# on the GPU, the benchmark at 32 px and at 256 px, and a short main job with its image grids.
#
# What it needs, on a machine without internet that has torch, torchvision, Lightning,
# torchmetrics, einops, safetensors and pillow: `make gpu-bundle` here builds gpu_bundle/ (the
# wheels of omegaconf, antlr4-python3-runtime and lpips); carry it and weights/lpips/alexnet.safetensors
# (the 256-px benchmark times LPIPS-VGG with random weights: its speed is the same). The FID
# network (87 MB) stays behind: the main job runs with eval.fid_weights=off and writes its
# samples as numbers (demo/samples.safetensors) for a gFID computed where the network is.
# Everything it writes goes to $OUT (default: gpu_check/).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_check}
PY=${PY:-python3}
mkdir -p "$OUT"
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
if [ -d gpu_bundle ]; then
    $PY -m pip install --no-index --no-deps gpu_bundle/*.whl > "$OUT/install.log" 2>&1
fi
export PYTHONPATH=$PWD VQGAN_LPIPS_WEIGHTS=weights/lpips
if ! $PY -c "import torch, pytorch_lightning, omegaconf, lpips; assert torch.cuda.is_available()" >> "$OUT/install.log" 2>&1; then
    echo "not ready: see $OUT/install.log"; exit 1
fi

timeout 150 $PY -m pytest -q tests/test_bf16.py tests/test_decode_step.py tests/test_loading.py tests/test_maskgit.py \
    > "$OUT/tests.log" 2>&1; echo "tests exit $?" >> "$OUT/tests.log"

GPU32='data.batch_size=64 data.num_workers=8 model.ch=64 model.num_res_blocks=2'
timeout 200 $PY scripts/bench.py --repeats 3 --phase-timeout 60 --vqgan-overrides "$GPU32" \
    --phases sampling_small,sampling_medium,sampling_large,maskgit_small,maskgit_medium,tokenizer,gpt_training,vqgan_training \
    --out "$OUT/bench_32.json" 2> "$OUT/bench_32.log"
timeout 60 $PY scripts/bench.py --repeats 3 --phase-timeout 50 --vqgan-overrides "$GPU32 trainer.compile=true" \
    --phases vqgan_training --out "$OUT/bench_32_compiled.json" 2> "$OUT/bench_32_compiled.log"
timeout 90 $PY scripts/bench.py --repeats 3 --phase-timeout 40 --vqgan-config configs/vqgan/f16_256.yaml \
    --vqgan-overrides "loss.perceptual.weights=random" \
    --gpt-config configs/transformer/gpt100m_256.yaml --phases tokenizer,gpt_training,vqgan_training \
    --out "$OUT/bench_256.json" 2> "$OUT/bench_256.log"

timeout 200 $PY scripts/main_job.py --config configs/main/gpu.yaml run_dir="$OUT/demo" budget_minutes=3 \
    'vqgan_overrides=[data.batch_size=64,data.num_workers=8,model.ch=64,model.num_res_blocks=2]' \
    'gpt_overrides=[model.n_layer=8,model.n_embd=512,model.n_head=8]' eval.fid_weights=off \
    > "$OUT/main_job.log" 2>&1; echo "main job exit $?" >> "$OUT/main_job.log"
rm -rf "$OUT/demo/stage1/checkpoints" "$OUT/demo/stage2/checkpoints" "$OUT/demo/stage2/codes"
ls -l "$OUT"
