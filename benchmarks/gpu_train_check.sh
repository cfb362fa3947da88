#!/usr/bin/env bash
# One-command check of a GPU (budgeted at about 8 minutes on one H100/H200; not yet run on
# one): cut the corpus's patches, train the paper's network (stage 1, then stage 2 with the
# warmed-up distillation) in bf16 with the largest batch that fits, report steps/s, voxels/s,
# model FLOP utilisation and peak memory, sample, and segment phantoms and test-bed cases with
# the trained model's diffusion features.
#
#   bash benchmarks/gpu_train_check.sh [extra arguments of benchmarks/gpu_train_check.py]
#
# Writes runs/gpu_check/ and benchmarks/results/gpu_train_check.json.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
"${PYTHON:-python}" benchmarks/gpu_train_check.py --model paper --patch 32 64 64 --device cuda \
  --precision bf16 --stage1-seconds 140 --stage2-seconds 80 --patches-per-source 64 \
  --testbed-cases a0001-mixed cip64-mixed --out runs/gpu_check \
  --json benchmarks/results/gpu_train_check.json "$@"
