#!/usr/bin/env bash
# The CUDA kernels on a real GPU, in one command (planned for one H200 in at most ~8 minutes):
#   1. build convforge for this GPU's compute capability only, without network: a virtual
#      environment that sees the machine's packages (torch, CuPy, NumPy), and
#      pip install --no-build-isolation --no-index with the build tools already there;
#   2. the op test suite with the real `cuda` backend (the `backend` fixture gains 'cuda': NumPy
#      arrays copied to the GPU and back) and the GPU-array tests (CuPy arrays, torch CUDA
#      tensors against torch's CUDA ops and the float64 references), which run instead of skipping;
#   3. compute-sanitizer memcheck, racecheck and synccheck over tools/gpu_kernel_grid.py, a small
#      grid that launches every kernel (any finding fails the check);
#   4. python -m bench --device cuda: GEMM n = 1024-8192, conv2d forward and backward, pooling,
#      against cuBLAS / cuDNN (CUDA events), JSON under $OUT/bench/results/<gpu kind>/ (copy it
#      into bench/results/ to keep it).
# Everything goes to one log, $OUT/gpu-check.log, beside the JSON files; a short summary ends it
# (tools/gpu_check_summary.py: tests passed/failed, sanitizer findings, ratios to cuBLAS/cuDNN).
#
#   tools/gpu_check.sh            # run it; exit status 1 if any step failed
#   tools/gpu_check.sh --dry-run  # print the exact commands, run nothing (works without a GPU)
#
# Settings (environment): CONVFORGE_GPU_CHECK_OUT (default gpu-check-out), PYTHON (python3),
# CONVFORGE_GPU_ARCH (default: the GPU's compute capability, 9.0 -> 90), CONVFORGE_GPU_BUILD
# (build-gpu), CONVFORGE_GPU_WHEELS (gpu-wheels), NVIDIA_SMI (nvidia-smi), CONVFORGE_GPU_CHECK_BUDGET
# (480: seconds for the whole check; a step gets at most what is left, and one that cannot
# start in time is recorded as skipped and fails the check).
#
# What the GPU machine must have: nvcc, CMake >= 3.24, ninja, compute-sanitizer, and a Python with
# torch (CUDA), NumPy and CuPy. Python packages it lacks (scikit-build-core, pybind11, pytest,
# hypothesis, rich, threadpoolctl, ...) are installed from $CONVFORGE_GPU_WHEELS, a folder of
# wheels made beforehand on a CPU machine with network and carried along with the working tree:
#   pip download --only-binary :all: --dest gpu-wheels -r tools/gpu_check_requirements.txt
# Without a GPU this prints one line and exits 0.
set -uo pipefail
cd "$(dirname "$0")/.."

DRY=0
case "${1:-}" in
  --dry-run) DRY=1 ;;
  "") ;;
  *) echo "usage: tools/gpu_check.sh [--dry-run]" >&2; exit 2 ;;
esac

OUT=${CONVFORGE_GPU_CHECK_OUT:-gpu-check-out}
PYTHON=${PYTHON:-python3}
BUILD=${CONVFORGE_GPU_BUILD:-build-gpu}
WHEELS=${CONVFORGE_GPU_WHEELS:-gpu-wheels}
NVIDIA_SMI=${NVIDIA_SMI:-nvidia-smi}
VENV=$BUILD/venv
VPY=$VENV/bin/python
JOBS=$(nproc 2>/dev/null || echo 4)
BUDGET=${CONVFORGE_GPU_CHECK_BUDGET:-480}

gpu=$("$NVIDIA_SMI" --query-gpu=name,compute_cap --format=csv,noheader 2>/dev/null | head -n 1)
if [ -z "$gpu" ]; then
  if [ "$DRY" -eq 0 ]; then
    echo "gpu_check: no NVIDIA GPU on this machine ($NVIDIA_SMI finds none); nothing to check"
    exit 0
  fi
  gpu_name="no GPU here, so as for an H200"
  capability=9.0
else
  gpu_name=${gpu%%,*}
  capability=$(echo "${gpu##*,}" | tr -d ' ')
fi
ARCH=${CONVFORGE_GPU_ARCH:-${capability/./}}

if [ "$DRY" -eq 1 ]; then
  echo "# gpu_check --dry-run ($gpu_name: compute capability $capability -> sm_$ARCH); the commands, in order:"
else
  mkdir -p "$OUT"
  rm -f "$OUT/steps.txt"
  exec > >(tee "$OUT/gpu-check.log") 2>&1
  echo "gpu_check: $gpu_name, compute capability $capability -> sm_$ARCH, $(date -u +%FT%TZ), $(git rev-parse --short HEAD 2>/dev/null || echo 'no git')"
fi

FAILED=0
# step NAME SECONDS COMMAND...: prints the command (the dry run stops there), runs it under a time
# limit, records "NAME EXIT SECONDS" in $OUT/steps.txt.
step() {
  local name=$1 limit=$2
  shift 2
  if [ "$DRY" -eq 1 ]; then
    printf '%q ' "$@" | sed 's/ $//'
    echo
    return 0
  fi
  local left=$((BUDGET - SECONDS))
  if [ "$left" -lt 15 ]; then
    echo "=== $name: skipped, the ${BUDGET} s budget is spent"
    echo "$name skipped 0" >> "$OUT/steps.txt"
    FAILED=1
    return 1
  fi
  [ "$limit" -le "$left" ] || limit=$left
  echo "=== $name (at most $limit s): $(printf '%q ' "$@")"
  local started=$SECONDS rc
  timeout "$limit" "$@"
  rc=$?
  echo "=== $name: exit $rc after $((SECONDS - started)) s"
  echo "$name $rc $((SECONDS - started))" >> "$OUT/steps.txt"
  [ "$rc" -eq 0 ] || FAILED=1
  return "$rc"
}

# 0. The environment: the machine's packages plus what the carried wheels bring, no network.
step venv 60 "$PYTHON" -m venv --system-site-packages "$VENV" || exit 1
if [ "$DRY" -eq 1 ]; then
  echo "# if a module of tools/gpu_check_requirements.txt is missing:"
  step wheels 120 "$VPY" -m pip install --no-index --find-links "$WHEELS" -r tools/gpu_check_requirements.txt
else
  missing=$("$VPY" - <<'EOF'
import importlib.util
modules = {"scikit_build_core": "scikit-build-core", "pybind11": "pybind11", "pytest": "pytest",
           "hypothesis": "hypothesis", "rich": "rich", "threadpoolctl": "threadpoolctl", "numpy": "numpy",
           "torch": "torch"}
print(" ".join(p for m, p in modules.items() if importlib.util.find_spec(m) is None))
EOF
)
  if [ -n "$missing" ]; then
    echo "gpu_check: missing Python packages: $missing"
    if [ -d "$WHEELS" ]; then
      step wheels 120 "$VPY" -m pip install --no-index --find-links "$WHEELS" -r tools/gpu_check_requirements.txt
    else
      echo "gpu_check: bring them as wheels: on a CPU machine with network run"
      echo "  pip download --only-binary :all: --dest $WHEELS -r tools/gpu_check_requirements.txt"
      echo "and carry $WHEELS/ with the working tree (or set CONVFORGE_GPU_WHEELS)"
      echo "wheels 1 0" >> "$OUT/steps.txt"
      FAILED=1
    fi
  fi
fi

# 1. Build for this GPU only (SASS for sm_$ARCH; a few minutes less than the release build), with
# line information for the sanitizer's reports.
step build 240 env CMAKE_BUILD_PARALLEL_LEVEL="$JOBS" "$VPY" -m pip install --no-build-isolation --no-index --no-deps \
  --force-reinstall -Cbuild-dir="$BUILD/cmake" -Ccmake.define.CONVFORGE_CUDA=ON \
  -Ccmake.define.CMAKE_CUDA_ARCHITECTURES="$ARCH-real" -Ccmake.define.CMAKE_CUDA_FLAGS=-lineinfo .
# The kernel grid once without a sanitizer: info(), a GPU is seen, every kernel gives the right result.
step grid 60 "$VPY" tools/gpu_kernel_grid.py --device cuda

# 2. The op tests, with the 'cuda' backend, the GPU-array tests and the torch backend and switch on
# CUDA tensors (about 85 s of tests on this CPU besides; the thread and emulator tests, which never
# touch the GPU, are left to CI).
step tests 200 "$VPY" -m pytest -q -p no:cacheprovider --junitxml="$OUT/tests.xml" \
  tests/test_gemm.py tests/test_conv2d.py tests/test_pool2d.py tests/test_limits.py \
  tests/test_cuda_arrays.py tests/test_torch_backend.py tests/test_torch_switch.py

# 3. compute-sanitizer over the kernel grid; convforge's kernels only (not torch's or CuPy's).
for tool in memcheck racecheck synccheck; do
  step "sanitizer-$tool" 75 compute-sanitizer --tool "$tool" --kernel-name kns=convforge --error-exitcode 1 \
    --print-limit 20 --log-file "$OUT/sanitizer-$tool.log" "$VPY" tools/gpu_kernel_grid.py --device cuda
done

# 4. The GPU benchmarks against cuBLAS / cuDNN.
step bench 180 "$VPY" -m bench all --device cuda --json "$OUT/bench-cuda.json" --record \
  --results-dir "$OUT/bench/results"

BUDGET=$((BUDGET + 30))  # the summary runs even when the steps used up the budget
step summary 30 "$VPY" tools/gpu_check_summary.py "$OUT"
[ "$DRY" -eq 1 ] && exit 0
exit "$FAILED"
