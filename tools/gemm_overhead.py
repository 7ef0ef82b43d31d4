#!/usr/bin/env python3
"""Per-call time of convforge.gemm against numpy.matmul on small products, where the call
overhead (Python layer, binding) is a large part of the time.

    python tools/gemm_overhead.py [--samples 15] [--calls 5000]

Shapes: 64x84 @ 84x10 (LeNet's last Linear layer at batch 64) and 1x1 @ 1x1 (nothing but
overhead). Also the raw binding (convforge._C.gemm into a preallocated output), so the Python
layer's share is the difference. One thread for both libraries; the cases run interleaved in
one process and each figure is the median over samples, so the ratios hold on a busy machine."""

import argparse
import statistics
import timeit

import numpy as np
from threadpoolctl import threadpool_limits

import convforge
from convforge import _C


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=15)
    parser.add_argument("--calls", type=int, default=5000, help="calls per sample")
    args = parser.parse_args()
    convforge.set_num_threads(1)
    rng = np.random.default_rng(0)
    cases = {}
    for name, (m, k, n) in {"64x84 @ 84x10": (64, 84, 10), "1x1 @ 1x1": (1, 1, 1)}.items():
        a = rng.random((m, k), dtype=np.float32)
        b = rng.random((k, n), dtype=np.float32)
        out = np.empty((m, n), np.float32)
        np.testing.assert_allclose(convforge.gemm(a, b), a.astype(np.float64) @ b, rtol=1e-5)
        cases[name] = {
            "numpy.matmul": lambda a=a, b=b: np.matmul(a, b),
            "convforge.gemm": lambda a=a, b=b: convforge.gemm(a, b),
            "_C.gemm (raw)": lambda a=a, b=b, out=out: _C.gemm(a, b, None, out, 1.0, 0.0, False, False),
        }
    times = {(s, c): [] for s, fns in cases.items() for c in fns}
    with threadpool_limits(1):
        for _ in range(args.samples):
            for shape, fns in cases.items():
                for case, fn in fns.items():
                    times[shape, case].append(timeit.timeit(fn, number=args.calls) / args.calls * 1e6)
    for shape, fns in cases.items():
        base = statistics.median(times[shape, "numpy.matmul"])
        for case in fns:
            t = statistics.median(times[shape, case])
            print(f"{shape:14s} {case:16s} {t:7.2f} us  {t / base:5.2f}x numpy.matmul")


if __name__ == "__main__":
    main()
