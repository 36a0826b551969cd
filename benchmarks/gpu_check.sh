#!/usr/bin/env bash
# GPU readiness check for one lent H100/H200 (<= 8 minutes): GPT-style decoder in bf16, plain loop vs our trainer
# (single, fsdp, deepspeed_stage_2; eager and torch.compile), checkpoint consolidation, TorchScript export latency.
# LM cases (GPU_CHECK_CASES=lm, or lm_single_eager,...): lm_llama_350m through the LM task vs a plain loop, MFU from
# the task's flops_per_token; targets single >= 45 % MFU and >= 0.97 of the plain loop, fsdp (bf16 params) >= 0.95.
# Runs with the machine's python3 (not the project venv). Prints a summary; writes $OUT/gpu_check.json if OUT is set.
# GPU_CHECK_DRY_RUN=1: tiny model, 2 steps, on the CPU (tests/test_gpu_check.py).
set -uo pipefail
cd "$(dirname "$0")/.."
# packages the GPU image lacks (hydra-core, omegaconf, deepspeed, ...) are carried as wheels in .whl/
if [ "${GPU_CHECK_DRY_RUN:-0}" != "1" ] && compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install --quiet --no-index --no-deps --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site:${PYTHONPATH:-}"
fi
export PYTHONPATH=".:${PYTHONPATH:-}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# DeepSpeed's op builds land somewhere writable and shared by the cases
export TORCH_EXTENSIONS_DIR="${TORCH_EXTENSIONS_DIR:-/tmp/torch_extensions}"
PYTHON="${GPU_CHECK_PYTHON:-python3}"
if [ "${GPU_CHECK_DRY_RUN:-0}" != "1" ]; then
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader || true
fi
"$PYTHON" -c 'import sys, torch; print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda)'
exec "$PYTHON" -m benchmarks.gpu_check
