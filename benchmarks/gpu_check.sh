#!/usr/bin/env bash
# The GPU check, for a machine with one CUDA GPU,
# in about 8 minutes:
#   1. environment: the machine's own PyTorch where it already has every dependency (a lent GPU
#      machine has no network), else `make venv`; torchattacks (benchmark only) from .whl/ or PyPI
#   2. the CUDA tests of the suite (`pytest -m cuda`: none may be skipped for want of CUDA)
#   3. benchmarks/paper_profile_cost.py: seconds per epoch of the paper profile's ResNet-56 at eps 8
#      on the full cifar10-jpeg training set, and the estimated GPU-hours of the whole paper profile
#   4. benchmarks/pgd_at_throughput.py on CUDA: this project's training step vs the plain loop
# Each step has its own time limit and writes its JSON and log into OUT as soon as it ends, so a
# step that runs out of time leaves the others' results.
#
#   ARREG_DATA=<folder of cifar10-jpeg.tar.gz> bash benchmarks/gpu_check.sh [OUT]
#   DEVICE=cpu SCALE=tiny bash benchmarks/gpu_check.sh OUT     # the CPU-side test (tests/test_benchmarks.py)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-${OUT:-benchmarks/out/gpu_check}}"
DEVICE="${DEVICE:-cuda}"
SCALE="${SCALE:-full}"
STEPS="${STEPS:-tests cost throughput}"  # a subset runs only those steps (e.g. STEPS=throughput)
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 ARREG_CACHE="${ARREG_CACHE:-/tmp/arreg-cache}"
status=0
step() {  # step NAME SECONDS COMMAND...: run with a time limit, log to OUT/NAME.log, remember failures
  local name=$1 limit=$2; shift 2
  case " $STEPS " in *" ${name%%_*} "*|*" $name "*) ;; *) echo "== $name: skipped (STEPS=$STEPS)"; return;; esac
  echo "== $name (limit ${limit} s)"
  local start=$SECONDS
  timeout --kill-after=10 "$limit" "$@" > >(tee "$OUT/$name.log") 2>&1
  local rc=$?
  echo "== $name: exit $rc after $((SECONDS - start)) s"
  [ $rc -eq 0 ] || status=1
}

# 1. environment
NEEDS="import torch, torchvision, numpy, scipy, pandas, yaml, filelock, tqdm, PIL, pytest"
if python3 -c "$NEEDS" 2>/dev/null; then
  PY=python3
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
  make venv >/dev/null && PY=.venv/bin/python || { echo "gpu_check: could not set up the environment" >&2; exit 1; }
fi
if ! $PY -c "import torchattacks" 2>/dev/null; then
  site="${TMPDIR:-/tmp}/arreg-gpu-site"
  if ls .whl/torchattacks-*.whl >/dev/null 2>&1; then
    $PY -m pip install -q --no-deps --no-index --target "$site" .whl/torchattacks-*.whl
  else
    $PY -m pip install -q --no-deps --target "$site" torchattacks==3.5.1
  fi
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
$PY - <<'EOF' | tee "$OUT/environment.log"
import torch
print("torch", torch.__version__, "| cuda", torch.version.cuda, "| available", torch.cuda.is_available(),
      "|", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU")
EOF
if [ "$DEVICE" = cuda ] && ! $PY -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
  echo "gpu_check: no CUDA device here (DEVICE=cpu SCALE=tiny checks the script on a CPU)" >&2
  exit 1
fi
if [ "$SCALE" = tiny ]; then
  COST=(--n-train 16 --epochs 1 --batch-size 8 --probe-batches 1 --experiments ar_sweep)
  THROUGHPUT=(--archs resnet8 --images 32 --batch-size 16 --repeats 1 --variants fp32-cl0-c0 bf16-cl1-c0)
  TEST_LIMIT=300 COST_LIMIT=300 THROUGHPUT_LIMIT=300
else
  COST=(--epochs 2)
  THROUGHPUT=(--images 10240 --repeats 2 --variants fp32-cl1-c0 bf16-cl1-c0 fp32-cl1-c2 bf16-cl1-c2)
  TEST_LIMIT=150 COST_LIMIT=240 THROUGHPUT_LIMIT=420
fi
TAG="$($PY -c "import torch; print(torch.cuda.get_device_name(0).split()[-1].lower() if '$DEVICE' == 'cuda' else 'cpu')" 2>/dev/null || echo "$DEVICE")"

# 2. the CUDA tests: every test marked `cuda` must run, none skipped
step tests_cuda "$TEST_LIMIT" $PY -m pytest -m cuda -rs -q -p no:cacheprovider $(grep -l "pytest.mark.cuda" tests/test_*.py)  # not the book's tests: a lent image lacks IPython
if [ "$DEVICE" = cuda ] && grep -q "no CUDA" "$OUT/tests_cuda.log"; then
  echo "gpu_check: CUDA tests were skipped on a CUDA machine" >&2; status=1
fi

# 3. seconds per epoch of the paper's ResNet-56 at eps 8, and the paper profile's GPU-hours
step cost_paper_profile "$COST_LIMIT" $PY benchmarks/paper_profile_cost.py --device "$DEVICE" "${COST[@]}" \
  --json "$OUT/paper_profile_cost_$TAG.json"

# 4. this project's PGD-10 training step vs the plain loop
step throughput_pgd_at "$THROUGHPUT_LIMIT" $PY benchmarks/pgd_at_throughput.py --device "$DEVICE" "${THROUGHPUT[@]}" \
  --json "$OUT/pgd_at_throughput_$TAG.json"

echo "gpu_check: results in $OUT (exit $status)"
exit $status
