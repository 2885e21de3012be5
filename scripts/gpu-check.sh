#!/usr/bin/env bash
# The GPU check (issue 21 item 4, issue 22): at most ~10 minutes on one GPU, installs
# nothing. Runs the benchmark's goals at paper sizes on CUDA in fp32 / bf16 / compiled,
# the memory estimate against torch.cuda.max_memory_allocated (FM-VarNet, E2E-VarNet at
# 246x512), 200 bf16 training steps of the paper's CMR-CLIP x4 FM-VarNet, and every
# GPU-only setting (pinned batches, non-blocking copies, cudnn.benchmark, TF32, autocast
# dtype, complex64 FFT inputs, the deterministic refusal, NCCL DDP on 2 GPUs); writes
# gpu-check-<time>/gpu-check.json and gpu-check.txt. Exit code 1 when a check fails.
#
#   scripts/gpu-check.sh                          # on the GPU, in the environment fmrecon runs in
#   scripts/gpu-check.sh --out DIR --steps bench memory
#   scripts/gpu-check.sh --device cpu --tiny      # the dry run of the tests (a minute on a CPU)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PYTHONPATH="${here}/src${PYTHONPATH:+:${PYTHONPATH}}"
exec "${PYTHON:-python}" -m fmrecon_bench.gpu_check "$@"
