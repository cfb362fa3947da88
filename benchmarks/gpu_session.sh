#!/usr/bin/env bash
# The checks that need a GPU, in two parts budgeted at about 8 and 4 minutes on one H100/H200
# (not yet run on one; on a CPU machine the GPU tests skip and the benchmarks leave out their GPU
# columns):
#
#   bash benchmarks/gpu_session.sh train OUTDIR   # the CUDA tests, then the training check with
#                                                 # the HU-preservation ablation (~8 min)
#   bash benchmarks/gpu_session.sh bench OUTDIR   # GPU columns: radiomics, GMM, engine end to end (~4 min)
#
# The real CT of ../shared/data must be there (the test-bed cases and the radiomics patches
# read it). Each step has its own time limit and log in OUTDIR; a failed step does not stop the
# next, and OUTDIR/steps.txt lists every step's exit status and seconds. JSON files go to OUTDIR
# only: copy what you keep into benchmarks/results/.
set -uo pipefail
cd "$(dirname "$0")/.."
part=${1:?"which part: train or bench"}
out=$(mkdir -p "${2:?"an output folder"}" && cd "$2" && pwd)
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 OMP_WAIT_POLICY=PASSIVE
PY=${PYTHON:-python3}
THREADS=${THREADS:-$(nproc)}

step() {  # step NAME SECONDS COMMAND...: run with a time limit, log, print the log's end
    local name=$1 limit=$2 t0=$SECONDS rc
    shift 2
    timeout "$limit" "$@" > "$out/$name.log" 2>&1
    rc=$?
    echo "$name: rc $rc, $((SECONDS - t0)) s" | tee -a "$out/steps.txt"
    tail -n 20 "$out/$name.log"
}

case $part in
train)
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$out/gpu.txt" 2>&1
    "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" >> "$out/gpu.txt"
    cat "$out/gpu.txt"
    step tests 90 "$PY" -m pytest -q -rs -p no:xvfb tests/test_accelerator.py \
        tests/training/test_train_accelerator.py tests/test_device.py \
        tests/radiomics/test_radiomics_batched.py tests/segment/test_segment_structure.py
    step train 480 bash benchmarks/gpu_train_check.sh --stage1-seconds 80 --stage2-seconds 40 \
        --ablation --eval-phantoms 1 --testbed-cases a0001-mixed cip64-mixed --out "$out/train" \
        --json "$out/gpu_train_check.json"
    ;;
bench)
    step radiomics 120 "$PY" benchmarks/bench_radiomics.py --threads "$THREADS" \
        --json "$out/radiomics_gpu.json"
    step gmm 150 "$PY" benchmarks/bench_segment.py --skip-engine --threads "$THREADS" \
        --json "$out/gmm_gpu.json"
    for device in cuda cpu; do
        step "engine_$device" 150 "$PY" benchmarks/bench_segment.py --skip-gmm --own-lung-mask --features auto \
            --device "$device" --threads "$THREADS" --json "$out/engine_$device.json"
    done
    ;;
*)
    echo "unknown part $part (train or bench)" >&2
    exit 2
    ;;
esac
