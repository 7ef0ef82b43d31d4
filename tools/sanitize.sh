#!/usr/bin/env bash
# Build the extension with AddressSanitizer + UndefinedBehaviorSanitizer in a separate build
# directory and run the op tests (CPU and emulated CUDA) against it. Any finding aborts the
# run with a report and a non-zero exit; a clean run prints "sanitizers: 0 findings".
#
#   tools/sanitize.sh                 # the CI selection (a few minutes on 2 cores)
#   tools/sanitize.sh tests/test_x.py # any pytest arguments instead of the CI selection
#
# Python itself is not instrumented, so the ASan runtime is preloaded and leak detection is off
# (the interpreter's own allocations at exit are not ours; tests/test_limits.py checks for
# leaks by resident memory instead). Huge allocations return NULL (-> MemoryError) as without ASan.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=${CONVFORGE_SANITIZE_BUILD:-build-sanitize}
PYTHON=${PYTHON:-python}
CXX=${CXX:-c++}

# Build tools, in the Python that runs the tests (CI's venv has only the test extra).
if ! "$PYTHON" -c "import pybind11" 2>/dev/null; then "$PYTHON" -m pip install --quiet pybind11; fi
if ! command -v cmake >/dev/null || ! command -v ninja >/dev/null; then
  "$PYTHON" -m pip install --quiet cmake ninja
fi

# The package sources, with the sanitized module beside them (never the dev build's module).
PKG="$BUILD/python/convforge"
mkdir -p "$PKG"
(cd python/convforge && find . -name '*.py' -print0 | xargs -0 -I{} cp --parents {} "../../$PKG/")

cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER="$CXX" \
  -DCONVFORGE_SANITIZE=ON -DCONVFORGE_CUDA=OFF -DCONVFORGE_CUDA_EMULATION=ON \
  -DCONVFORGE_MODULE_DIR="$PWD/$PKG" \
  -Dpybind11_DIR="$("$PYTHON" -c 'import pybind11; print(pybind11.get_cmake_dir())')" >/dev/null
cmake --build "$BUILD" -j2

if [ $# -eq 0 ]; then
  # The op tests on every ISA and backend, the fuzzers' small profile, threads and limits.
  set -- tests/test_gemm.py tests/test_conv2d.py tests/test_conv2d_algorithms.py tests/test_pool2d.py \
    tests/test_cuda_emulation.py::test_emulator_catches tests/test_fuzz.py tests/test_threads.py \
    tests/test_limits.py \
    --hypothesis-profile=sanitize -m "not no_sanitize"
fi

export PYTHONPATH="$PWD/$BUILD/python${PYTHONPATH:+:$PYTHONPATH}"
export LD_PRELOAD="$("$CXX" -print-file-name=libasan.so) $("$CXX" -print-file-name=libubsan.so)"
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=1:allocator_may_return_null=1:detect_stack_use_after_return=0:strict_init_order=1:check_initialization_order=1"
export UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1"
export CONVFORGE_SANITIZED=1  # tests skip only what cannot run under ASan (see no_sanitize)

module=$("$PYTHON" -c "import convforge._C as m; print(m.__file__)")
case "$module" in
  "$PWD/$BUILD"/*) echo "sanitize: testing $module" ;;
  *) echo "sanitize: picked up the wrong module: $module" >&2; exit 1 ;;
esac

"$PYTHON" -m pytest -q -p no:cacheprovider "$@"
echo "sanitizers: 0 findings (AddressSanitizer + UndefinedBehaviorSanitizer, halt_on_error)"
