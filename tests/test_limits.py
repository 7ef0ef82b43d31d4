"""Limits: empty tensors as torch, NaN/Inf as torch, subnormals exact, 64-bit index arithmetic
(through sparse memory maps: huge virtual arrays, a few touched pages), problems too large for
memory rejected with MemoryError/ValueError, and no memory growth over 10,000 calls per op."""

import mmap
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import convforge
from convforge import _C, reference

BACKENDS = convforge.info()["backends"]
F = torch.nn.functional
SANITIZED = bool(os.environ.get("CONVFORGE_SANITIZED"))


def t(x):
    return torch.from_numpy(np.ascontiguousarray(x))


# ----------------------------------------------------------------------------------------------
# Empty tensors


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("xs,ws,kw", [
    ((0, 3, 5, 5), (4, 3, 3, 3), {}),                     # N = 0
    ((0, 4, 5, 5), (4, 1, 3, 3), dict(groups=4)),         # N = 0, depthwise
    ((0, 2, 6, 6), (4, 2, 2, 2), dict(stride=2, padding=1)),
])
def test_conv2d_empty_batch_as_torch(backend, xs, ws, kw):
    x, w, b = np.ones(xs, np.float32), np.ones(ws, np.float32), np.ones(ws[0], np.float32)
    with convforge.host_backend(backend):
        y = convforge.conv2d(x, w, b, **kw)
        expected = F.conv2d(t(x), t(w), t(b), **kw)
        assert y.shape == tuple(expected.shape)
        # The backward writes every gradient: zeros for the weight and bias (an empty sum).
        p = convforge.functional._conv_padding(kw.get("padding", 0), ws, (kw.get("stride", 1),) * 2, (1, 1))
        gi, gw, gb = np.empty(xs, np.float32), np.full(ws, np.nan, np.float32), np.full(ws[0], np.nan, np.float32)
        _C.conv2d_backward(np.ones(y.shape, np.float32), x, w, gi, gw, gb, (kw.get("stride", 1),) * 2,
                           p, (1, 1), kw.get("groups", 1))
    np.testing.assert_array_equal(gw, 0)
    np.testing.assert_array_equal(gb, 0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_conv2d_empty_input_channels(backend):
    """C_in = 0: an empty sum, so the output is the bias. (torch returns a (N, 0, H', W') tensor
    here, which contradicts its own weight; convforge returns the mathematically right result.)"""
    x, w, b = np.ones((2, 0, 4, 4), np.float32), np.ones((3, 0, 3, 3), np.float32), np.arange(3, dtype=np.float32)
    with convforge.host_backend(backend):
        y = convforge.conv2d(x, w, b)
        gi, gw, gb = convforge.conv2d_backward(np.ones_like(y), x, w)
    np.testing.assert_array_equal(y, np.broadcast_to(b[None, :, None, None], (2, 3, 2, 2)))
    assert gi.shape == x.shape and gw.shape == w.shape
    np.testing.assert_array_equal(gb, 8.0)


@pytest.mark.parametrize("xs,ws", [((2, 3, 4, 4), (0, 3, 3, 3)), ((2, 3, 0, 4), (4, 3, 1, 1)),
                                   ((2, 3, 4, 0), (4, 3, 1, 1))])
def test_conv2d_rejects_what_torch_rejects(xs, ws):
    x, w = np.ones(xs, np.float32), np.ones(ws, np.float32)
    with pytest.raises(RuntimeError):
        F.conv2d(t(x), t(w), padding=1)
    with pytest.raises(ValueError):
        convforge.conv2d(x, w, padding=1)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("op", ["max", "avg"])
def test_pool_empty_batch_as_torch(backend, op):
    x = np.ones((0, 3, 6, 6), np.float32)
    with convforge.host_backend(backend):
        if op == "max":
            y, idx = convforge.max_pool2d(x, 3, 2, 1, return_indices=True)
            g = convforge.max_pool2d_backward(y, x, idx, 3, 2, 1)
            expected = F.max_pool2d(t(x), 3, 2, 1)
        else:
            y = convforge.avg_pool2d(x, 3, 2, 1)
            g = convforge.avg_pool2d_backward(y, x, 3, 2, 1)
            expected = F.avg_pool2d(t(x), 3, 2, 1)
    assert y.shape == tuple(expected.shape) and g.shape == x.shape


@pytest.mark.parametrize("shape", [(2, 0, 6, 6), (2, 3, 0, 6), (2, 3, 6, 0)])
def test_pool_rejects_what_torch_rejects(shape):
    x = np.ones(shape, np.float32)
    for fn, tfn in [(convforge.max_pool2d, F.max_pool2d), (convforge.avg_pool2d, F.avg_pool2d)]:
        with pytest.raises(RuntimeError):
            tfn(t(x), 3, 2, 1, ceil_mode=True)
        with pytest.raises(ValueError, match="input: expected non-empty"):
            fn(x, 3, 2, 1, ceil_mode=True)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("m,n,k", [(0, 5, 3), (4, 0, 3), (4, 5, 0), (0, 0, 0)])
def test_gemm_empty_as_torch(backend, m, n, k):
    a, b = np.ones((m, k), np.float32), np.ones((k, n), np.float32)
    c = np.full((m, n), 2.0, np.float32)
    with convforge.host_backend(backend):
        got = convforge.gemm(a, b, c, beta=0.5)
    np.testing.assert_array_equal(got, torch.addmm(t(c), t(a), t(b), beta=0.5).numpy())


# ----------------------------------------------------------------------------------------------
# NaN and Inf propagate as in torch


def specials(shape, seed, dtype=np.float32):
    r = np.random.default_rng(seed)
    x = r.uniform(-1, 1, shape).astype(dtype)
    pick = r.random(shape)
    x[pick < 0.03] = np.nan
    x[(pick >= 0.03) & (pick < 0.06)] = np.inf
    x[(pick >= 0.06) & (pick < 0.09)] = -np.inf
    return x


def same_specials(got, want, what):
    want = np.asarray(want)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=f"{what}: NaN pattern")
    np.testing.assert_array_equal(np.where(np.isinf(want), want, 0), np.where(np.isinf(got), got, 0),
                                  err_msg=f"{what}: Inf pattern")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("groups", [1, 4])
def test_conv2d_nan_inf_as_torch(backend, groups):
    x = specials((2, 4, 9, 8), 1)
    w = np.random.default_rng(2).uniform(-1, 1, (4, 4 // groups, 3, 3)).astype(np.float32)
    w[0, 0, 1, 1] = np.inf
    dy = specials((2, 4, 9, 8), 3)
    with convforge.host_backend(backend):
        y = convforge.conv2d(x, w, padding=1, groups=groups)
        gi, gw, gb = convforge.conv2d_backward(dy, x, w, padding=1, groups=groups)
    tx, tw = t(x).double().requires_grad_(), t(w).double().requires_grad_()
    ty = F.conv2d(tx, tw, padding=1, groups=groups)
    ty.backward(t(dy).double())
    same_specials(y, ty.detach().numpy(), "output")
    same_specials(gi, tx.grad.numpy(), "grad_input")
    same_specials(gw, tw.grad.numpy(), "grad_weight")
    same_specials(gb, t(dy).double().sum((0, 2, 3)).numpy(), "grad_bias")


@pytest.mark.parametrize("backend", BACKENDS)
def test_pool_nan_inf_as_torch(backend):
    x = specials((2, 3, 9, 10), 4)
    with convforge.host_backend(backend):
        m, idx = convforge.max_pool2d(x, 3, 2, 1, return_indices=True)
        a = convforge.avg_pool2d(x, 3, 2, 1, ceil_mode=True)
    tm, tidx = F.max_pool2d(t(x), 3, 2, 1, return_indices=True)
    same_specials(m, tm.numpy(), "max_pool2d")
    np.testing.assert_array_equal(m[~np.isnan(m)], tm.numpy()[~np.isnan(m)])
    np.testing.assert_array_equal(idx, tidx.numpy())
    same_specials(a, F.avg_pool2d(t(x).double(), 3, 2, 1, ceil_mode=True).numpy(), "avg_pool2d")


@pytest.mark.parametrize("backend", BACKENDS)
def test_gemm_nan_inf_as_torch(backend):
    a, b, c = specials((13, 9), 5), specials((9, 11), 6), specials((13, 11), 7)
    with convforge.host_backend(backend):
        got = convforge.gemm(a, b, c, beta=1.0)
        got0 = convforge.gemm(a, b, c, beta=0.0)  # beta == 0: NaN in c does not propagate
    same_specials(got, torch.addmm(t(c).double(), t(a).double(), t(b).double()).numpy(), "beta=1")
    same_specials(got0, torch.addmm(t(c).double(), t(a).double(), t(b).double(), beta=0).numpy(), "beta=0")


# ----------------------------------------------------------------------------------------------
# Subnormals: integer multiples of the smallest subnormal add and scale by small integers
# exactly, so flushing to zero (FTZ/DAZ) or any loss shows as an exact mismatch.


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_subnormals_exact(backend, dtype):
    tiny = np.finfo(dtype).smallest_subnormal
    r = np.random.default_rng(8)
    x = (r.integers(-50, 50, (2, 4, 7, 6)) * tiny).astype(dtype)
    w = r.integers(-3, 4, (5, 4, 3, 3)).astype(dtype)
    a = (r.integers(-50, 50, (6, 5)) * tiny).astype(dtype)
    b = r.integers(-3, 4, (5, 7)).astype(dtype)
    assert np.all((np.abs(x) < np.finfo(dtype).tiny))  # all subnormal or zero
    with convforge.host_backend(backend):
        np.testing.assert_array_equal(convforge.conv2d(x, w, padding=1), reference.conv2d(x, w, padding=1))
        dy = (r.integers(-50, 50, (2, 5, 7, 6)) * tiny).astype(dtype)
        gi = convforge.conv2d_backward(dy, x, w, padding=1, output_mask=(True, False, False))[0]
        np.testing.assert_array_equal(convforge.gemm(a, b), reference.gemm(a, b))
        np.testing.assert_array_equal(convforge.max_pool2d(x, 2), reference.max_pool2d(x, 2))
        # avg divides by the window size; a divisor of 1 keeps it exact
        np.testing.assert_array_equal(convforge.avg_pool2d(x, 2, divisor_override=1),
                                      reference.avg_pool2d(x, 2, divisor_override=1))
    np.testing.assert_array_equal(gi, reference.conv2d_backward(
        dy, x, w, padding=1, output_mask=(True, False, False))[0])


# ----------------------------------------------------------------------------------------------
# 64-bit index arithmetic: arrays with more than 2^31 elements (or offsets past 2^31 elements)
# that occupy no memory: a read-only shared map of a sparse file, where only the few values
# written are ever touched. Run in a child process with the data segment limited, so that a
# kernel allocating a workspace of the input's size fails with MemoryError instead of swapping.

BIG_INDEX_SCRIPT = textwrap.dedent("""
    import mmap, resource, sys, numpy as np, convforge
    resource.setrlimit(resource.RLIMIT_DATA, (3 << 30, 3 << 30))
    path = sys.argv[1]
    H = W = 46341 + 5                       # H * W > 2^31 elements (8.6 GB of float32)
    with open(path, "w+b") as f:
        f.truncate(H * W * 4)
        big = mmap.mmap(f.fileno(), H * W * 4)
        x = np.frombuffer(big, np.float32).reshape(1, 1, H, W)
        # values at flat offsets beyond 2^31: the last row, sampled by a strided 1x1 window
        rows = np.arange(0, H, 23170)
        cols = np.arange(0, W, 23170)
        for r in rows:
            for c in cols:
                x[0, 0, r, c] = r * 1e-3 + c * 1e-6 + 1.0
        want = x[0, 0][np.ix_(rows, cols)].copy()
        ones = np.ones((1, 1, 1, 1), np.float32)
        y = convforge.conv2d(x, ones, stride=23170)
        assert np.array_equal(y[0, 0], want), (y, want)
        m = convforge.max_pool2d(x, 1, stride=23170)
        assert np.array_equal(m[0, 0], want), m
        a = convforge.avg_pool2d(x, 1, stride=23170)
        assert np.array_equal(a[0, 0], want), a
        gw = convforge.conv2d_backward(np.ones(y.shape, np.float32), x, ones, stride=23170,
                                       output_mask=(False, True, True))[1]
        assert np.isclose(gw[0, 0, 0, 0], want.sum(), rtol=1e-6), (gw, want.sum())
        # gemm: a 2-row view whose second row starts 2^31 + 3 elements in
        lda = 2**31 + 3
        a2 = np.lib.stride_tricks.as_strided(x.reshape(-1), (2, 4), (lda * 4, 4))
        a2.flags.writeable  # a view of the map
        flat = x.reshape(-1)
        flat[lda: lda + 4] = [1, 2, 3, 4]
        flat[:4] = [5, 6, 7, 8]
        got = convforge.gemm(a2, np.eye(4, dtype=np.float32))
        assert np.array_equal(got, [[5, 6, 7, 8], [1, 2, 3, 4]]), got
        del x, a2, flat
        big.close()
    print("ok")
""")


@pytest.mark.no_sanitize  # AddressSanitizer reserves more address space than the limit allows
def test_indices_beyond_2_31_elements(tmp_path):
    result = subprocess.run([sys.executable, "-c", BIG_INDEX_SCRIPT, str(tmp_path / "sparse.bin")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-3000:]


def test_too_large_for_memory():
    x = np.ones((1, 1, 2, 2), np.float32)
    w = np.ones((1, 1, 1, 1), np.float32)
    # An output of 2^42 elements: numpy cannot allocate it; nothing is attempted below.
    with pytest.raises((MemoryError, ValueError)):
        convforge.conv2d(x, w, padding=2**20)
    with pytest.raises((MemoryError, ValueError)):
        convforge.conv2d(np.ones((1, 1, 1, 1), np.float32), np.ones((2**20, 1, 1, 1), np.float32),
                         padding=2**12)
    # Window parameters whose size arithmetic would overflow int64 are rejected up front.
    for kw in [dict(padding=2**62), dict(padding=2**31), dict(dilation=2**62), dict(stride=2**40)]:
        with pytest.raises(ValueError, match="at most 2147483647"):
            convforge.conv2d(x, w, **kw)
    for kw in [dict(kernel_size=2**62, padding=2**61), dict(kernel_size=3, dilation=2**62)]:
        with pytest.raises(ValueError, match="at most 2147483647"):
            convforge.max_pool2d(x, **kw)


def test_zero_size_arrays_with_huge_dimensions():
    """Zero-size arrays may have dimensions far beyond memory; their sizes must not wrap."""
    x = np.ones((0, 2**20, 2**20, 1), np.float32)
    y = convforge.max_pool2d(x, 1)
    assert y.shape == (0, 2**20, 2**20, 1)
    a = np.ones((0, 2**40), np.float32)
    b = np.ones((2**40, 0), np.float32)
    assert convforge.gemm(a, b).shape == (0, 0)
    out = convforge.gemm(np.ones((3, 0), np.float32), np.ones((0, 2), np.float32))
    np.testing.assert_array_equal(out, 0)


# ----------------------------------------------------------------------------------------------
# Leaks: 10,000 calls of each op on small inputs do not grow the resident set.


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.no_sanitize  # AddressSanitizer's quarantine holds freed memory by design
@pytest.mark.parametrize("backend", BACKENDS)
def test_no_growth_over_10000_calls(backend):
    r = np.random.default_rng(9)
    f = lambda *s: r.standard_normal(s).astype(np.float32)  # noqa: E731
    x, w, b, a, bb = f(1, 2, 6, 6), f(3, 2, 3, 3), f(3), f(5, 4), f(4, 3)
    y = convforge.conv2d(x, w, b, padding=1)
    m, idx = convforge.max_pool2d(x, 2, return_indices=True)
    av = convforge.avg_pool2d(x, 2)
    ops = {
        "gemm": lambda: convforge.gemm(a, bb),
        "conv2d": lambda: convforge.conv2d(x, w, b, padding=1),
        "conv2d_backward": lambda: convforge.conv2d_backward(y, x, w, padding=1),
        "max_pool2d": lambda: convforge.max_pool2d(x, 2, return_indices=True),
        "max_pool2d_backward": lambda: convforge.max_pool2d_backward(m, x, idx, 2),
        "avg_pool2d": lambda: convforge.avg_pool2d(x, 2),
        "avg_pool2d_backward": lambda: convforge.avg_pool2d_backward(av, x, 2),
        "rejected call": lambda: pytest.raises(ValueError, convforge.conv2d, x, w, stride=0),
    }
    calls = 10_000 if backend == "cpu" else 1_000  # emulation is slow; 1,000 launches each
    with convforge.host_backend(backend):
        for name, op in ops.items():
            for _ in range(200):  # warm up: workspaces, fiber stacks, allocator pools
                op()
            before = rss_bytes()
            for _ in range(calls):
                op()
            grown = rss_bytes() - before
            assert grown < 4 << 20, f"{name}: resident memory grew by {grown / 2**20:.1f} MiB over {calls} calls"
