#!/usr/bin/env bash
# Train the default diffusion model from every real scan of the shared data folder, the
# real-anatomy test bed (lesions inserted into those scans, other seeds than the scored cases)
# and phantoms: patches (lesion-weighted where pathology is known), stage 1 (DDPM), stage 2
# (radiomic distillation, InfoNCE weight warmed up from 0), then the fp16 inference file.
#
#   scripts/train_default.sh [OUT]        # default OUT: runs/default
#
# Writes OUT/patches/ (patches.json lists every source), OUT/stage1/ and OUT/stage2/ (log.csv,
# checkpoint.pt, model.pt), OUT/default_model.pt (to replace
# src/diffseglung_core/data/default_model.pt) and OUT/samples/ (samples and metrics.json on the
# first patches). Rerun it to continue: finished steps are kept, stopped stages resume.
#
# Settings (environment variables; defaults: a CPU run of the small network):
#   DATA        shared real CT folder              ../shared/data
#   MODEL       network preset (small, paper)      small
#   PATCH       patch size "D H W" (voxels)        "16 32 32"
#   PER_SOURCE  patches per source (x kind weight) 128
#   FOCUS       share of centres in known lesions  0.5
#   STEPS1 BATCH1                                  3000 8
#   STEPS2 BATCH2                                  600 16
#   WARMUP2     step at which the InfoNCE weight reaches LAMBDA   STEPS2 / 3
#   LAMBDA TEMPERATURE                             0.5 0.1
#   LR EMA                                         2e-4 0.998
#   THREADS WORKERS DEVICE SEED                    2 2 auto 0
# The paper's configuration on a GPU: MODEL=paper PATCH="32 96 96" BATCH1=32 BATCH2=32 DEVICE=cuda
# with more steps (see benchmarks/gpu_train_check.sh for what one GPU does in minutes).
set -euo pipefail
cd "$(dirname "$0")/.."

out="${1:-runs/default}"
py="${PYTHON:-python}"
DATA="${DATA:-../shared/data}"
MODEL="${MODEL:-small}"
PATCH="${PATCH:-16 32 32}"
PER_SOURCE="${PER_SOURCE:-128}"
FOCUS="${FOCUS:-0.5}"
STEPS1="${STEPS1:-3000}"
BATCH1="${BATCH1:-8}"
STEPS2="${STEPS2:-600}"
BATCH2="${BATCH2:-16}"
WARMUP2="${WARMUP2:-$((STEPS2 / 3))}"
LAMBDA="${LAMBDA:-0.5}"
TEMPERATURE="${TEMPERATURE:-0.1}"
LR="${LR:-2e-4}"
EMA="${EMA:-0.998}"
THREADS="${THREADS:-2}"
WORKERS="${WORKERS:-2}"
DEVICE="${DEVICE:-auto}"
SEED="${SEED:-0}"
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"

common=(--lr "$LR" --ema-decay "$EMA" --seed "$SEED" --threads "$THREADS" --device "$DEVICE"
        --checkpoint-every 250 --log-every 10)

# 1. patches: every source of the corpus (diffseglung_core.training.recipe)
if [ ! -f "$out/patches/patches.json" ]; then
  # shellcheck disable=SC2086  # PATCH is three numbers
  "$py" -m diffseglung_core.training.recipe patches --out "$out/patches" --data "$DATA" \
    --patch-size $PATCH --patches-per-source "$PER_SOURCE" --focus-fraction "$FOCUS" \
    --workers "$WORKERS" --seed "$SEED" --overwrite
fi

# 2. stage 1: noise prediction on the patches
resume1=()
[ -f "$out/stage1/checkpoint.pt" ] && resume1=(--resume)
"$py" -m diffseglung_core.cli train --patches "$out/patches" --out "$out/stage1" --model "$MODEL" \
  --steps "$STEPS1" --batch-size "$BATCH1" "${common[@]}" "${resume1[@]}"

# 3. stage 2: radiomic distillation, weight 0 -> LAMBDA over steps 0..WARMUP2
resume2=()
[ -f "$out/stage2/checkpoint.pt" ] && resume2=(--resume)
"$py" -m diffseglung_core.cli train-distill --from "$out/stage1/checkpoint.pt" --patches "$out/patches" \
  --out "$out/stage2" --steps "$STEPS2" --batch-size "$BATCH2" --warmup-start 0 \
  --warmup-end "$WARMUP2" --lambda-max "$LAMBDA" --temperature "$TEMPERATURE" "${common[@]}" \
  "${resume2[@]}"

# 4. the inference file (EMA weights in fp16, provenance: corpus and both stages' settings)
"$py" -m diffseglung_core.training.recipe export --from "$out/stage2/checkpoint.pt" \
  --out "$out/default_model.pt" --patches "$out/patches"

# 5. samples conditioned on real lung masks, and generation metrics against those patches
"$py" -m diffseglung_core.cli sample --model "$out/default_model.pt" --out "$out/samples" \
  --reference "$out/patches" --n 8 --steps 20 --device "$DEVICE" --overwrite
