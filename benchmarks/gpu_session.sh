#!/usr/bin/env bash
# One lent GPU session, one command (about 9 minutes on an H200): measure, then train the `gpu` tier.
#   1. environment: the machine's own PyTorch (a lent machine has no network); torchattacks (the
#      plain loop's attack) from .whl/; the GPU, driver and torch versions into OUT/session.log
#   1b. benchmarks/gpu_ceiling.py: the TFLOP/s of a large bf16 matrix product (a few seconds)
#   2. the CUDA tests (`pytest -m cuda`: none may be skipped for want of CUDA; where they fail or run out
#      of time, step 4 does not stack the runs)
#   3. benchmarks/gpu_step_matrix.py: images/s per run and per GPU, ResNet-20 and ResNet-56 at batch
#      256, fp32/bf16, eager/CUDA graph, 1/2/4/8 runs per GPU, beside the plain loop
#   3b. the same script's stacked and streams cells (runs stacked into one network, arreg_core.stacked,
#      beside runs on streams), ResNet-20 and ResNet-56 at batch 256 with 4 and 8 runs, beside one
#      run and the plain loop; once per GPU: skipped where a session filed under benchmarks/results
#      measured it on this GPU (its cells decide step 4's stack; STACKED=1 measures again, STACKED=0 never)
#   4. benchmarks/gpu_tier_plan.py: the tier's epochs and precision from that throughput and the time
#      left (only while results/gpu/runs holds no run: after that the profile's own values are kept,
#      so that a later session resumes the same runs); and whether its runs train as stacks
#      (STACK=3 where the graphed 4-run ResNet-20 stack beat 4 runs on streams, in 3b's cells or a
#      filed session's of this GPU, and step 2's CUDA tests passed, else 1)
#   5. arreg prepare --profile gpu --workers 4 -p stack=STACK: the AR sweep's runs missing, either
#      as stacks in this process (the standard-training runs as one, then each seed's three PGD
#      runs as one, each stack analysed as it ends) or four runs side by side (one process each,
#      seed after seed), the step as one CUDA graph, evaluated and analysed, checkpoints every epoch
#   6. arreg export-runs: the store packed into OUT/gpu-runs.partNN (at most 15 MiB each), also when
#      step 5 ran out of time (its runs resume from their last epoch in a later session)
# Back here: `python benchmarks/file_gpu_session.py <files>` files the logs and JSONs in
# benchmarks/results/gpu_session_<gpu>_<date>/ and imports the store (`arreg import-runs`).
#
#   ARREG_DATA=<folder of cifar10-jpeg.tar.gz> [MATRIX=0] [STACKED=0|1] [STACK=K] bash benchmarks/gpu_session.sh OUT [SECONDS]
# (STACK=K given: 3b's choice is not made, K is used)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-${OUT:-benchmarks/out/gpu_session}}"
TOTAL="${2:-${TOTAL:-555}}"   # the whole script's budget in seconds; the device call's limit must be above it
mkdir -p "$OUT"
exec > >(tee -a "$OUT/session.log") 2>&1
export PYTHONUNBUFFERED=1 ARREG_CACHE="${ARREG_CACHE:-/tmp/arreg-cache}" TQDM_DISABLE=1
STORE=results/gpu/runs
status=0
left() { local l=$((TOTAL - SECONDS - ${1:-0})); echo $(( l > 10 ? l : 10 )); }  # seconds left, less $1
step() {  # step NAME SECONDS COMMAND...: run with a time limit, remember failures
  local name=$1 limit=$2; shift 2
  echo "== $name (limit ${limit} s, $(left) s left)"
  local start=$SECONDS
  timeout --kill-after=10 "$limit" "$@"
  local rc=$?
  echo "== $name: exit $rc after $((SECONDS - start)) s"
  [ $rc -eq 0 ] || status=1
  return $rc
}

# 1. environment
PY=python3
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if ! $PY -c "import torchattacks" 2>/dev/null && ls .whl/torchattacks-*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-deps --no-index --target /tmp/arreg-site .whl/torchattacks-*.whl && \
    export PYTHONPATH="$PYTHONPATH:/tmp/arreg-site"
fi
echo "date: $(date -u +%F)"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1
# the measurements' files are named by the GPU they ran on (h200, h100...: arreg_core.gpu_sessions)
GPU_TAG="$($PY -m arreg_core.gpu_sessions tag "$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)")"
GPU_TAG="${GPU_TAG:-gpu}"
$PY - <<'EOF'
import torch
print("torch", torch.__version__, "| cuda", torch.version.cuda, "| cudnn", torch.backends.cudnn.version(),
      "|", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU")
EOF
$PY -c "import torch, sys; sys.exit(not torch.cuda.is_available())" || { echo "gpu_session: no CUDA device" >&2; exit 1; }
$PY -c "from arreg_core.data import load_data; d = load_data('cifar10-jpeg'); print('cifar10-jpeg', len(d.y_train), len(d.y_test))" \
  || { echo "gpu_session: cifar10-jpeg not found under ARREG_DATA=${ARREG_DATA:-}" >&2; exit 1; }

# 1b. the chip's ceiling: a large bf16 matrix product's TFLOP/s (the Performance chapter's yardstick)
step ceiling 30 $PY benchmarks/gpu_ceiling.py --json "$OUT/gpu_ceiling_$GPU_TAG.json"

# 2. the CUDA tests
# (only the files that hold CUDA tests: the others import the book's packages, which the image lacks)
# (where they fail or run out of time, step 4 does not stack the runs)
step tests_cuda 90 $PY -m pytest -m cuda -rs -q -p no:cacheprovider $(grep -l "pytest.mark.cuda" tests/test_*.py)
TESTS_EXIT=$?
# 3. the throughput matrix (its JSON is rewritten after every cell: a timeout keeps what was measured)
# (MATRIX=0 skips it: a later session that only trains more of the tier gives it the time)
if [ "${MATRIX:-1}" = 1 ]; then
  step matrix 170 $PY benchmarks/gpu_step_matrix.py --seconds 1.5 --repeats 2 --json "$OUT/gpu_step_matrix_$GPU_TAG.json"
fi

# 3b. runs stacked into one network: one grouped kernel where each run launched its own (the 5x goal),
#     beside the same number of runs on streams, measured in the same script
#     (once per GPU: where a filed session of this GPU measured it, its cells decide and 3b is skipped)
FILED="$($PY -m arreg_core.gpu_sessions filed gpu_step_stacked "$GPU_TAG")"
if [ "${STACKED:-auto}" = 1 ] || { [ "${STACKED:-auto}" = auto ] && [ -z "$FILED" ]; }; then
  NO_PLAIN=(); [ "${MATRIX:-1}" = 1 ] && NO_PLAIN=(--no-plain)  # the matrix measured the plain loop already
  step stacked 150 $PY benchmarks/gpu_step_matrix.py --archs resnet20 resnet56 --runs 4 8 --sharing stacked streams \
    --seconds 1.5 --repeats 1 "${NO_PLAIN[@]}" --json "$OUT/gpu_step_stacked_$GPU_TAG.json"
fi

# 4. the tier's size (a store that holds runs keeps the profile's values)
OVERRIDES=()
if [ -z "$(ls -A "$STORE" 2>/dev/null | grep -v prepare_log)" ] && [ -f "$OUT/gpu_step_matrix_$GPU_TAG.json" ]; then
  PLAN="$($PY benchmarks/gpu_tier_plan.py "$OUT/gpu_step_matrix_$GPU_TAG.json" --seconds "$(left 30)" \
          --json "$OUT/gpu_tier_plan.json")" && eval "$PLAN" && echo "plan: $PLAN" && \
    OVERRIDES=(-p "epochs=$EPOCHS" -p "milestones=$MILESTONES" -p "precision=$PRECISION")
fi

if [ -z "${STACK:-}" ]; then
  STACK=1
  CELLS="$($PY -m arreg_core.gpu_sessions stack-cells "$OUT" "$GPU_TAG")"  # 3b's, else a filed session's, else 3's
  if [ -n "$CELLS" ]; then
    CHOICE="$($PY benchmarks/gpu_tier_plan.py "$CELLS" --stack --tests-exit "$TESTS_EXIT" --json "$OUT/gpu_stack_choice.json")" \
      && eval "$CHOICE"
  fi
fi
echo "stack: $STACK"
OVERRIDES+=(-p "stack=$STACK")

# 5. the AR sweep of the gpu profile: as stacks, or four runs side by side
step train "$(left 30)" $PY -m arreg_core.cli prepare --profile gpu --workers 4 --experiments ar_sweep \
  --runs-dir "$STORE" "${OVERRIDES[@]}"
$PY -m arreg_core.cli runs --runs-dir "$STORE"

# 6. pack the store for the way back
$PY -m arreg_core.cli export-runs --runs-dir "$STORE" --out "$OUT/gpu-runs" || status=1
echo "gpu_session: results in $OUT after $SECONDS s (exit $status)"
exit $status
