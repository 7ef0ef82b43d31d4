"""A small grid that launches every CUDA kernel of convforge at least once, each result checked
against the float64 reference: the GEMM tiles (64x64 and 128x128, float4 and scalar loads, every
transpose, float64), conv2d forward (depthwise, implicit GEMM with both tiles and both load
widths, float64), its backward (bias, depthwise and implicit-GEMM grad_input with both tiles,
depthwise and split-K grad_weight with its reduction) and the four pooling kernels.

tools/gpu_check.sh runs it under compute-sanitizer (memcheck, racecheck, synccheck), where the
shapes must stay small. `--device cuda-emulated` runs the same grid on the emulator (NumPy arrays,
no GPU), which is how it is tested without one.

    python tools/gpu_kernel_grid.py [--device cuda|cuda-emulated] [--arrays auto|cupy|torch]
"""

import argparse
import contextlib
import math
import os
import sys

import numpy as np

import convforge
from convforge import reference

# (name, x shape, weight shape, conv2d keyword arguments). Which kernel each reaches follows the
# launch rules in csrc/cuda/conv2d.cu: 128x128 tiles need >= 128 output channels per group and
# >= 2048 output pixels (grad_input: >= 128 input channels per group and >= 2048 input pixels);
# float4 weight loads need c_in/groups * kh * kw % 4 == 0.
CONV_CASES = [
    ("tile64_vec", (2, 4, 9, 11), (8, 4, 3, 3), dict(padding=1)),
    ("tile64_scalar_strided", (2, 3, 10, 9), (5, 3, 3, 3), dict(stride=2, padding=1, dilation=(1, 2))),
    ("grouped", (1, 6, 8, 8), (4, 3, 3, 3), dict(groups=2, padding=(0, 1))),
    ("depthwise", (2, 5, 9, 9), (5, 1, 3, 3), dict(groups=5, padding=1)),
    ("pointwise_splitk", (4, 8, 16, 16), (6, 8, 1, 1), dict()),  # n*oh*ow = 1024: grad_weight splits K
    ("tile128_fwd", (2, 8, 32, 32), (128, 8, 3, 3), dict(padding=1)),
    ("tile128_fwd_scalar", (2, 3, 32, 32), (128, 3, 3, 3), dict(padding=1)),
    ("tile128_bwd_input", (2, 128, 32, 32), (8, 128, 1, 1), dict()),
]

# (name, m, n, k): 128x128 tiles from m, n >= 512; float4 loads when every leading dimension is a
# multiple of 4.
GEMM_CASES = [("tile64_vec", 33, 40, 20), ("tile64_scalar", 17, 29, 13), ("tile128_vec", 512, 512, 36),
              ("tile128_scalar", 513, 515, 33)]

POOL_CASES = [((2, 3, 9, 13), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
              ((1, 2, 8, 8), dict(kernel_size=2))]


def tolerance(magnitude, depth, dtype):
    # tests/helpers.py: a float sum of `depth` terms drifts by about eps * sqrt(depth) * sum(|terms|).
    return 8.0 * np.finfo(dtype).eps * math.sqrt(depth + 1) * np.asarray(magnitude, np.float64) + np.finfo(dtype).tiny


class Grid:
    def __init__(self, device, arrays):
        self.device, self.arrays, self.failures, self.cases = device, arrays, [], 0
        # No memory pools: compute-sanitizer only sees an access outside an allocation, and a pool
        # hands out pieces of larger ones.
        if arrays == "cupy":
            import cupy

            cupy.cuda.set_allocator(None)
            self.to_device, self.to_host = cupy.asarray, cupy.asnumpy
        elif arrays == "torch":
            os.environ.setdefault("PYTORCH_NO_CUDA_MEMORY_CACHING", "1")  # read when torch starts CUDA
            import torch

            self.to_device = lambda a: torch.from_numpy(np.ascontiguousarray(a)).cuda()
            self.to_host = lambda t: t.cpu().numpy()
        else:
            self.to_device, self.to_host = np.ascontiguousarray, np.asarray

    def context(self):
        return convforge.host_backend("cuda-emulated") if self.device == "cuda-emulated" else contextlib.nullcontext()

    def check(self, what, got, want, magnitude=None, depth=1):
        self.cases += 1
        got = self.to_host(got)
        if magnitude is None:
            ok = got.shape == want.shape and np.array_equal(got, want)
        else:
            ok = got.shape == want.shape and bool((np.abs(got.astype(np.float64) - want) <=
                                                   tolerance(magnitude, depth, got.dtype)).all())
        if not ok:
            self.failures.append(what)
        print(f"{'ok  ' if ok else 'FAIL'} {what}", flush=True)


def run_gemm(g, rng):
    for name, m, n, k in GEMM_CASES:
        for dtype in (np.float32, np.float64):
            for ta in (False, True):
                for tb in (False, True):
                    a = rng.uniform(-1, 1, (k, m) if ta else (m, k)).astype(dtype)
                    b = rng.uniform(-1, 1, (n, k) if tb else (k, n)).astype(dtype)
                    c = rng.uniform(-1, 1, (m, n)).astype(dtype)
                    with g.context():
                        got = convforge.gemm(g.to_device(a), g.to_device(b), g.to_device(c), alpha=0.5, beta=2.0,
                                             trans_a=ta, trans_b=tb)
                    kw = dict(alpha=0.5, beta=2.0, trans_a=ta, trans_b=tb)
                    g.check(f"gemm {name} {dtype.__name__} trans_a={ta} trans_b={tb}", got,
                            reference.gemm(a, b, c, **kw), reference.gemm(np.abs(a), np.abs(b), np.abs(c), **kw), k + 1)
                    if dtype == np.float64 and name.startswith("tile128"):
                        break  # float64 always takes the 64x64 tile: one transpose case is enough
                if dtype == np.float64 and name.startswith("tile128"):
                    break


def run_conv(g, rng):
    for name, xs, ws, kw in CONV_CASES:
        for dtype in (np.float32, np.float64):
            x, w = rng.uniform(-1, 1, xs).astype(dtype), rng.uniform(-1, 1, ws).astype(dtype)
            b = rng.uniform(-1, 1, ws[0]).astype(dtype)
            want = reference.conv2d(x, w, b, **kw)
            mag = reference.conv2d(np.abs(x), np.abs(w), np.abs(b), **kw)
            dy = rng.uniform(-1, 1, want.shape).astype(dtype)
            grads = reference.conv2d_backward(dy, x, w, **kw)
            mags = reference.conv2d_backward(np.abs(dy), np.abs(x), np.abs(w), **kw)
            with g.context():
                y = convforge.conv2d(g.to_device(x), g.to_device(w), g.to_device(b), **kw)
                got = convforge.conv2d_backward(g.to_device(dy), g.to_device(x), g.to_device(w), **kw)
            g.check(f"conv2d fwd {name} {dtype.__name__}", y, want, mag, ws[1] * ws[2] * ws[3] + 1)
            depths = (ws[0] * ws[2] * ws[3], dy.shape[0] * dy.shape[2] * dy.shape[3], dy.shape[0] * dy.shape[2] * dy.shape[3])
            for part, got_, want_, mag_, depth in zip(("grad_input", "grad_weight", "grad_bias"), got, grads, mags, depths):
                g.check(f"conv2d bwd {part} {name} {dtype.__name__}", got_, want_, mag_, depth)


def run_pool(g, rng):
    for shape, kw in POOL_CASES:
        for dtype in (np.float32, np.float64):
            x = rng.uniform(-1, 1, shape).astype(dtype)
            out, idx = reference.max_pool2d(x, **kw, return_indices=True)
            avg = reference.avg_pool2d(x, **kw)
            dy = rng.uniform(-1, 1, out.shape).astype(dtype)
            k = kw["kernel_size"] ** 2
            with g.context():
                dx_ = g.to_device(x)
                got_out, got_idx = convforge.max_pool2d(dx_, **kw, return_indices=True)
                got_max_bwd = convforge.max_pool2d_backward(g.to_device(dy), dx_, got_idx, **kw)
                got_avg = convforge.avg_pool2d(dx_, **kw)
                got_avg_bwd = convforge.avg_pool2d_backward(g.to_device(dy), dx_, **kw)
            label = f"{'x'.join(map(str, shape))} {dtype.__name__}"
            g.check(f"max_pool2d fwd {label}", got_out, out)
            g.check(f"max_pool2d indices {label}", got_idx, idx)
            g.check(f"max_pool2d bwd {label}", got_max_bwd, reference.max_pool2d_backward(dy, x, idx, **kw),
                    reference.max_pool2d_backward(np.abs(dy), x, idx, **kw), k)
            g.check(f"avg_pool2d fwd {label}", got_avg, avg, reference.avg_pool2d(np.abs(x), **kw), k)
            g.check(f"avg_pool2d bwd {label}", got_avg_bwd, reference.avg_pool2d_backward(dy, x, **kw),
                    reference.avg_pool2d_backward(np.abs(dy), x, **kw), k)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=("cuda", "cuda-emulated"), default="cuda")
    p.add_argument("--arrays", choices=("auto", "cupy", "torch"), default="auto",
                   help="the GPU array library (auto: CuPy when installed, else torch)")
    args = p.parse_args(argv)
    if args.device == "cuda-emulated":
        arrays = "numpy"
    elif args.arrays == "auto":
        try:
            import cupy  # noqa: F401

            arrays = "cupy"
        except ImportError:
            arrays = "torch"
    else:
        arrays = args.arrays
    info = convforge.info()
    print(f"convforge {convforge.__version__} from {convforge.__file__}: {info}")
    if args.device == "cuda" and not (info["cuda_built"] and info["cuda_devices"] > 0):
        print("kernel grid: convforge sees no CUDA device (or was built without the CUDA kernels)")
        return 1
    g = Grid(args.device, arrays)
    rng = np.random.default_rng(20261203)
    run_gemm(g, rng)
    run_conv(g, rng)
    run_pool(g, rng)
    print(f"kernel grid on {args.device} ({arrays} arrays): {g.cases - len(g.failures)} passed, "
          f"{len(g.failures)} failed")
    return 1 if g.failures else 0


if __name__ == "__main__":
    sys.exit(main())
