"""Smoke checks of an installed convforge, as a new user gets it from a wheel: the import, info(),
gemm, conv2d and pooling against the float64 references on every ISA path and host backend, and
`convforge train --limit 200`. Needs only NumPy and convforge (scikit-learn for the train step,
from the [demo] extra), so it runs in a bare virtual environment.

    python tools/wheel_smoke.py [--expect-cuda] [--no-compiler] [--skip-train]

Run it from outside the source tree so that the installed package is the one imported. Exits
non-zero with the failing check's message; prints one line per check.
"""

import argparse
import math
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time

import numpy as np

started = time.perf_counter()
import convforge  # noqa: E402
from convforge import reference  # noqa: E402

IMPORT_S = time.perf_counter() - started

# The wheel's CUDA kernels: SASS for each architecture, plus PTX of the newest (CMakeLists.txt).
CUDA_ARCHITECTURES = ["sm_75", "sm_80", "sm_86", "sm_89", "sm_90"]
COMPILERS = ("cc", "gcc", "g++", "c++", "clang", "clang++", "nvcc", "cmake")


def check(condition, message):
    if not condition:
        raise SystemExit(f"wheel smoke: FAILED: {message}")


def tolerance(magnitude, depth, dtype):
    # The test suite's derived tolerance (tests/helpers.py): a float sum of `depth` terms drifts
    # by about eps * sqrt(depth) * sum(|terms|).
    eps, tiny = np.finfo(dtype).eps, np.finfo(dtype).tiny
    return 8.0 * eps * math.sqrt(depth + 1) * np.asarray(magnitude, np.float64) + tiny


def close(what, actual, expected, magnitude, depth):
    actual = np.asarray(actual)
    check(actual.shape == np.shape(expected), f"{what}: shape {actual.shape} != {np.shape(expected)}")
    error = np.abs(actual.astype(np.float64) - expected)
    allowed = tolerance(magnitude, depth, actual.dtype)
    bad = ~(error <= allowed)
    check(not bad.any(), f"{what}: {int(bad.sum())} of {bad.size} elements off the float64 reference "
                         f"(worst error {float(error.max()):.3g})")


def ops(label, rng):
    """gemm, conv2d forward and backward, max and avg pooling, float32 and float64."""
    for dtype in (np.float32, np.float64):
        u = lambda *shape: rng.uniform(-1, 1, size=shape).astype(dtype)  # noqa: E731
        a, b = u(37, 53), u(53, 29)
        close(f"{label} gemm {dtype.__name__}", convforge.gemm(a, b), reference.gemm(a, b),
              reference.gemm(np.abs(a), np.abs(b)), 53)

        x, w, bias = u(2, 3, 11, 10), u(5, 3, 3, 3), u(5)
        args = dict(stride=2, padding=1)
        y = convforge.conv2d(x, w, bias, **args)
        close(f"{label} conv2d {dtype.__name__}", y, reference.conv2d(x, w, bias, **args),
              reference.conv2d(np.abs(x), np.abs(w), np.abs(bias), **args), 28)
        gy = u(*y.shape)
        got = convforge.conv2d_backward(gy, x, w, **args)
        want = reference.conv2d_backward(gy, x, w, **args)
        mag = reference.conv2d_backward(np.abs(gy), np.abs(x), np.abs(w), **args)
        for name, g, e, m, depth in zip(("grad_input", "grad_weight", "grad_bias"), got, want, mag,
                                        (45, y.shape[0] * y.shape[2] * y.shape[3], 60)):
            close(f"{label} conv2d {name} {dtype.__name__}", g, e, m, depth)

        p = u(2, 3, 9, 13)
        out, idx = convforge.max_pool2d(p, 3, 2, 1, return_indices=True)
        ref_out, ref_idx = reference.max_pool2d(p, 3, 2, 1, return_indices=True)
        check(np.array_equal(out, ref_out) and np.array_equal(idx, ref_idx), f"{label} max_pool2d {dtype.__name__}")
        avg = convforge.avg_pool2d(p, 3, 2, 1, ceil_mode=True)
        close(f"{label} avg_pool2d {dtype.__name__}", avg, reference.avg_pool2d(p, 3, 2, 1, ceil_mode=True),
              reference.avg_pool2d(np.abs(p), 3, 2, 1, ceil_mode=True), 9)
    print(f"wheel smoke: ops on {label}: ok")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--expect-cuda", action="store_true",
                        help=f"require the CUDA kernels for {', '.join(CUDA_ARCHITECTURES)}")
    parser.add_argument("--no-compiler", action="store_true", help="require that no compiler is on PATH")
    parser.add_argument("--skip-train", action="store_true", help="leave out `convforge train`")
    args = parser.parse_args(argv)

    if args.no_compiler:
        found = {c: shutil.which(c) for c in COMPILERS if shutil.which(c)}
        check(not found, f"expected no compiler on PATH, found {found}")
    site = sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]
    check(any(convforge.__file__.startswith(s) for s in site),
          f"convforge imported from {convforge.__file__}, not from the installed package in {site[0]}")
    print(f"wheel smoke: import convforge {convforge.__version__} in {IMPORT_S:.2f} s from {os.path.dirname(convforge.__file__)}")

    info = convforge.info()
    print(f"wheel smoke: info() = {info}")
    check(info["version"] != "0.0.0+source", "the installed package has no version metadata")
    check(info["supported_isas"][0] == "scalar" and info["isa"] == info["supported_isas"][-1],
          f"expected the best supported ISA to be active, got {info['isa']} of {info['supported_isas']}")
    check("cuda-emulated" in info["backends"], f"expected the cuda-emulated backend, got {info['backends']}")
    if args.expect_cuda:
        check(info["cuda_built"], "expected a build with the CUDA kernels")
        check(info["cuda_architectures"] == CUDA_ARCHITECTURES,
              f"expected CUDA kernels for {CUDA_ARCHITECTURES}, got {info['cuda_architectures']}")

    rng = np.random.default_rng(20261203)
    for isa in info["supported_isas"]:
        convforge._C.set_isa(isa)
        ops(f"cpu/{isa}", rng)
    convforge._C.set_isa(info["isa"])
    with convforge.host_backend("cuda-emulated"):
        ops("cuda-emulated", rng)

    if not args.skip_train:
        script = shutil.which("convforge")
        check(script is not None, "the `convforge` command is not on PATH")
        run = subprocess.run([script, "train", "--limit", "200", "--no-progress"], capture_output=True, text=True,
                             timeout=600)
        check(run.returncode == 0, f"`convforge train --limit 200` exited {run.returncode}:\n{run.stdout}{run.stderr}")
        found = re.search(r"test accuracy: ([0-9.]+) %", run.stdout)
        check(found is not None, f"`convforge train` printed no test accuracy:\n{run.stdout}")
        # Ten classes: chance is 10 %; a working training run is far above it even on 200 samples.
        check(float(found.group(1)) > 30.0, f"`convforge train` learned nothing:\n{run.stdout}")
        print(f"wheel smoke: convforge train --limit 200: ok, test accuracy {found.group(1)} %")
    print("wheel smoke: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
