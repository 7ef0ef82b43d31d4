"""The CUDA kernels, executed by convforge's emulator of the CUDA execution model ('cuda-emulated'),
against float64 oracles; and proof that the emulator catches what a GPU would punish.

Every op runs under several thread-order seeds: a race-free kernel gives bitwise the same result
for every seed, so a missing barrier shows up as a seed-dependent (and wrong) result."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import convforge
from convforge import _C, reference
from helpers import assert_close, random

pytestmark = pytest.mark.skipif(
    "cuda-emulated" not in convforge.info()["backends"], reason="built without the CUDA emulator"
)

SEEDS = [0, 1, 2]


def emulated(fn, seeds=SEEDS):
    """fn() on the emulated backend under every seed; checks the results are bitwise identical."""
    results = []
    with convforge.host_backend("cuda-emulated"):
        for seed in seeds:
            _C._emu_set_seed(seed)
            results.append(fn())
    _C._emu_set_seed(0)
    first = results[0]
    flat = lambda r: [np.asarray(a) for a in (r if isinstance(r, tuple) else (r,)) if a is not None]
    for other in results[1:]:
        for a, b in zip(flat(first), flat(other)):
            assert np.array_equal(a, b, equal_nan=True), "result depends on the thread order (a race)"
    return first


def t64(a, grad=False):
    return torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


# ----------------------------------------------------------------------------------------------
# The emulator's own checks, on deliberately broken kernels (csrc/cuda/broken.cu)


def run_kernel(name, data):
    _C._emu_run_kernel(name, data)
    return data


@pytest.mark.parametrize("seed", range(5))
def test_control_kernels_are_correct_for_every_order(seed):
    _C._emu_set_seed(seed)
    data = random((512,), np.float32, "reverse", seed)
    out = run_kernel("reverse", data.copy())
    np.testing.assert_array_equal(out, data.reshape(4, 128)[:, ::-1].ravel())
    out = run_kernel("warp_sum", data.copy())
    sums = data.astype(np.float64).reshape(16, 32).sum(axis=1)
    np.testing.assert_allclose(out.reshape(16, 32), np.repeat(sums[:, None], 32, axis=1), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("seed", range(5))
def test_missing_barrier_gives_a_wrong_result(seed):
    _C._emu_set_seed(seed)
    data = random((512,), np.float32, "barrier", seed)
    out = run_kernel("missing_barrier", data.copy())
    assert not np.array_equal(out, data.reshape(4, 128)[:, ::-1].ravel())


def test_random_order_differs_between_seeds():
    outs = []
    for seed in range(3):
        _C._emu_set_seed(seed)
        outs.append(run_kernel("missing_barrier", np.arange(128, dtype=np.float32)))
    assert any(not np.array_equal(outs[0], o) for o in outs[1:])


@pytest.mark.parametrize(
    "name,count,message",
    [
        ("off_by_one", 300, "out-of-bounds access to 'data': element 300 of 300"),
        ("divergent_barrier", 200, "exited while .* wait at __syncthreads .*divergent barrier"),
        ("divergent_shuffle", 128, "divergent warp operation"),
        ("dynamic_smem_overflow", 64, "out-of-bounds access to 'dynamic shared memory'"),
        ("misaligned_vector", 8, "misaligned 16-byte access"),
        ("too_much_shared_memory", 128, "too many resources requested: 65536 bytes"),
        ("too_many_threads", 128, "invalid configuration argument"),
    ],
)
def test_emulator_catches(name, count, message):
    with pytest.raises(RuntimeError, match=message):
        run_kernel(name, np.zeros(count, np.float32))


def test_errors_name_the_kernel_block_and_thread():
    with pytest.raises(RuntimeError, match=r"kernel 'shift_off_by_one_kernel' block \(2,0,0\) thread \(43,0,0\)"):
        run_kernel("off_by_one", np.zeros(300, np.float32))


# ----------------------------------------------------------------------------------------------
# GEMM


def check_gemm(m, n, k, dtype=np.float32, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, offset=0):
    a = random((k, m + offset) if trans_a else (m, k + offset), dtype, "a")[:, offset:]
    b = random((n, k + offset) if trans_b else (k, n + offset), dtype, "b")[:, offset:]
    c = random((m, n), dtype, "c")
    got = emulated(lambda: convforge.gemm(a, b, c, alpha=alpha, beta=beta, trans_a=trans_a, trans_b=trans_b))
    expected = reference.gemm(a, b, c, alpha=alpha, beta=beta, trans_a=trans_a, trans_b=trans_b)
    magnitude = reference.gemm(np.abs(a), np.abs(b), np.abs(c), alpha=abs(alpha), beta=abs(beta),
                               trans_a=trans_a, trans_b=trans_b)
    assert got.dtype == dtype
    assert_close(got, expected, magnitude, depth=k + 1)


@pytest.mark.parametrize("m,n,k", [(1, 1, 1), (3, 5, 2), (64, 64, 16), (65, 63, 17), (31, 129, 40), (7, 3, 0)])
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (False, True), (True, False), (True, True)])
def test_gemm_tiles(m, n, k, trans_a, trans_b):
    check_gemm(m, n, k, trans_a=trans_a, trans_b=trans_b)


def test_gemm_large_tiles_with_edges():  # 128x128 tiles, a partial tile on every side
    check_gemm(515, 521, 20)


@pytest.mark.parametrize("offset", [1, 2])  # unaligned rows: the scalar-load kernels
def test_gemm_unaligned(offset):
    check_gemm(33, 36, 24, offset=offset)
    check_gemm(33, 36, 24, trans_a=True, trans_b=True, offset=offset)


@pytest.mark.parametrize("alpha,beta", [(2.5, 0.0), (1.0, 1.0), (-0.5, 3.0), (0.0, 2.0)])
def test_gemm_alpha_beta(alpha, beta):
    check_gemm(19, 24, 17, alpha=alpha, beta=beta)


def test_gemm_float64():
    check_gemm(37, 29, 45, np.float64, trans_b=True, alpha=0.5, beta=2.0)


# ----------------------------------------------------------------------------------------------
# conv2d: forward, grad_input, grad_weight, grad_bias against torch in float64

CONV_CASES = {
    # name: (n, c_in, h, w, c_out, kernel, stride, padding, dilation, groups)
    "3x3": (2, 3, 9, 11, 5, (3, 3), 1, 1, 1, 1),
    "1x1": (3, 17, 5, 4, 9, (1, 1), 1, 0, 1, 1),
    "strided_dilated": (1, 4, 13, 11, 6, (3, 2), (2, 1), (1, 0), (1, 2), 1),
    "grouped": (2, 6, 8, 7, 9, (3, 3), 2, 1, 1, 3),
    "depthwise": (2, 5, 9, 8, 5, (3, 3), 1, 1, 1, 5),
    "depthwise_multiplier": (1, 4, 7, 9, 8, (5, 3), (2, 2), (2, 1), (1, 2), 4),
    "same_even_kernel": (1, 3, 7, 6, 4, (4, 2), 1, "same", 1, 1),
    "same_dilated": (2, 2, 6, 7, 3, (3, 4), 1, "same", (2, 1), 1),
    "split_k": (4, 3, 16, 16, 7, (3, 3), 1, 1, 1, 1),  # grad_weight reduces over 1024 in 4 splits
    "edge_tiles": (1, 70, 9, 9, 65, (2, 2), 1, 0, 1, 1),  # rows and K past one 64-wide tile
    "large_tiles": (2, 4, 32, 32, 130, (3, 3), 1, 1, 1, 1),  # 128x128 tiles forward
    "large_tiles_input": (2, 130, 32, 32, 4, (1, 1), 1, 0, 1, 1),  # 128x128 tiles for grad_input
    "kernel_is_input": (2, 3, 4, 5, 2, (4, 5), 1, 0, 1, 1),
}


def torch_conv(x, w, b, gy, stride, padding, dilation, groups):
    xt, wt, bt = t64(x, True), t64(w, True), t64(b, True)
    y = F.conv2d(xt, wt, bt, stride=stride, padding=padding, dilation=dilation, groups=groups)
    y.backward(t64(gy))
    return y.detach().numpy(), xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy()


# float64 runs the same kernels on a subset of the grid.
CONV_GRID = [(case, np.float32) for case in CONV_CASES] + [
    (case, np.float64) for case in ("3x3", "grouped", "depthwise_multiplier", "split_k")
]


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("case,dtype", CONV_GRID)
def test_conv2d(case, dtype):
    n, c_in, h, w, c_out, kernel, stride, padding, dilation, groups = CONV_CASES[case]
    x = random((n, c_in, h, w), dtype, "x", case)
    weight = random((c_out, c_in // groups, *kernel), dtype, "w", case)
    bias = random((c_out,), dtype, "b", case)
    args = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    y = emulated(lambda: convforge.conv2d(x, weight, bias, **args))
    gy = random(y.shape, dtype, "gy", case)
    gx, gw, gb = emulated(lambda: convforge.conv2d_backward(gy, x, weight, **args))
    ey, egx, egw, egb = torch_conv(x, weight, bias, gy, **args)
    my, mgx, mgw, mgb = torch_conv(np.abs(x), np.abs(weight), np.abs(bias), np.abs(gy), **args)
    taps = kernel[0] * kernel[1]
    assert_close(y, ey, my, depth=c_in // groups * taps + 1, what="output")
    assert_close(gx, egx, mgx, depth=c_out // groups * taps, what="grad_input")
    assert_close(gw, egw, mgw, depth=n * y.shape[2] * y.shape[3], what="grad_weight")
    assert_close(gb, egb, mgb, depth=n * y.shape[2] * y.shape[3], what="grad_bias")


def test_conv2d_without_bias_and_partial_mask():
    x, weight = random((2, 4, 6, 6), np.float32, "x"), random((3, 4, 3, 3), np.float32, "w")
    y = emulated(lambda: convforge.conv2d(x, weight, None, padding=1))
    assert_close(y, F.conv2d(t64(x), t64(weight), padding=1).numpy(),
                 F.conv2d(t64(np.abs(x)), t64(np.abs(weight)), padding=1).numpy(), depth=37)
    gy = random(y.shape, np.float32, "gy")
    gx, gw, gb = emulated(lambda: convforge.conv2d_backward(gy, x, weight, padding=1, output_mask=(False, True, False)))
    assert gx is None and gb is None and gw.shape == weight.shape


# ----------------------------------------------------------------------------------------------
# Pooling: every mode, forward and backward, against torch in float64

MAX_CASES = [
    # kernel, stride, padding, dilation, ceil_mode
    (2, 2, 0, 1, False),
    (3, 2, 1, 1, True),
    (3, 1, 1, 2, False),
    ((3, 2), (2, 1), (1, 0), (1, 2), True),
    (4, 3, 2, 1, True),
]


@pytest.mark.parametrize("case", range(len(MAX_CASES)))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_pool2d(case, dtype):
    kernel, stride, padding, dilation, ceil_mode = MAX_CASES[case]
    x = random((2, 3, 11, 10), dtype, "x", case)
    x[0, 0, 2, 2] = np.nan
    x[1, 2, 4:8, 4:8] = 0.5  # ties: the first maximum wins
    args = (kernel, stride, padding, dilation, ceil_mode)
    y, idx = emulated(lambda: convforge.max_pool2d(x, *args, return_indices=True))
    gy = random(y.shape, dtype, "gy", case)
    gx = emulated(lambda: convforge.max_pool2d_backward(gy, x, idx, *args))
    xt = t64(x, True)
    ey, eidx = F.max_pool2d(xt, *args, return_indices=True)
    ey.backward(t64(gy))
    np.testing.assert_array_equal(y, ey.detach().numpy().astype(dtype))
    np.testing.assert_array_equal(idx, eidx.numpy())
    xm = t64(x, True)
    F.max_pool2d(xm, *args).backward(t64(np.abs(gy)))  # the same windows summing |gy|
    assert_close(gx, xt.grad.numpy(), xm.grad.numpy(), depth=16, what="grad_input")


AVG_CASES = [
    # kernel, stride, padding, ceil_mode, count_include_pad, divisor_override
    (2, 2, 0, False, True, None),
    (3, 2, 1, True, True, None),
    (3, 2, 1, True, False, None),
    ((3, 2), (2, 1), (1, 1), False, False, 5),
    (3, 3, 1, True, True, 2),
    (4, 3, 2, True, False, None),
]


@pytest.mark.parametrize("case", range(len(AVG_CASES)))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_avg_pool2d(case, dtype):
    kernel, stride, padding, ceil_mode, count_include_pad, divisor = AVG_CASES[case]
    x = random((2, 3, 11, 10), dtype, "x", case)
    args = (kernel, stride, padding, ceil_mode, count_include_pad, divisor)
    y = emulated(lambda: convforge.avg_pool2d(x, *args))
    gy = random(y.shape, dtype, "gy", case)
    gx = emulated(lambda: convforge.avg_pool2d_backward(gy, x, *args))

    def oracle(xv, gv):
        xt = t64(xv, True)
        out = F.avg_pool2d(xt, *args)
        out.backward(t64(gv))
        return out.detach().numpy(), xt.grad.numpy()

    ey, egx = oracle(x, gy)
    my, mgx = oracle(np.abs(x), np.abs(gy))
    assert_close(y, ey, my, depth=16, what="output")
    assert_close(gx, egx, mgx, depth=16, what="grad_input")


# ----------------------------------------------------------------------------------------------
# Build facts


def test_info_reports_the_cuda_build():
    info = convforge.info()
    assert "cuda-emulated" in info["backends"]
    assert info["cuda_devices"] >= 0
    if info["cuda_built"]:
        assert set(info["cuda_architectures"]) >= {"sm_75", "sm_80", "sm_86", "sm_89", "sm_90"}


def test_unknown_test_kernel():
    with pytest.raises(ValueError, match="name: expected a known test kernel"):
        _C._emu_run_kernel("nope", np.zeros(4, np.float32))
