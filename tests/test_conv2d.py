import itertools

import numpy as np
import pytest
import torch

import convforge
from convforge import reference
from helpers import assert_close, random

pytestmark = pytest.mark.filterwarnings("ignore:Using padding=.same. with even kernel")

DTYPES = [np.float32, np.float64]

# (input shape, weight shape, keyword arguments): the awkward cases.
CASES = {
    "basic": ((2, 3, 7, 9), (4, 3, 3, 3), {}),
    "stride_not_dividing": ((2, 3, 8, 7), (5, 3, 3, 3), dict(stride=2, padding=1)),
    "kernel_over_input": ((1, 2, 3, 4), (3, 2, 5, 5), dict(padding=1)),
    "stride_over_kernel": ((2, 2, 10, 9), (3, 2, 2, 2), dict(stride=3)),
    "dilation2": ((1, 2, 11, 10), (3, 2, 3, 3), dict(dilation=2, padding=2)),
    "dilation3": ((1, 2, 12, 11), (2, 2, 3, 2), dict(dilation=(3, 2), padding=(1, 0))),
    "groups2": ((2, 4, 6, 7), (6, 2, 3, 3), dict(groups=2, padding=1)),
    "groups4": ((2, 8, 6, 5), (8, 2, 3, 3), dict(groups=4, stride=2)),
    "depthwise": ((2, 5, 7, 19), (5, 1, 3, 3), dict(groups=5, padding=1)),
    "depthwise_x2": ((1, 3, 6, 37), (6, 1, 3, 3), dict(groups=3, padding=1)),
    "depthwise_s2": ((1, 4, 9, 21), (4, 1, 5, 5), dict(groups=4, stride=2, padding=2)),
    "depthwise_dil": ((1, 2, 9, 18), (2, 1, 3, 3), dict(groups=2, dilation=2, padding=(2, 1))),
    "batch1_cin1": ((1, 1, 9, 9), (4, 1, 3, 3), {}),
    "conv1x1": ((2, 7, 5, 6), (5, 7, 1, 1), {}),
    "conv1x1_stride2": ((2, 3, 5, 6), (4, 3, 1, 1), dict(stride=2)),
    "conv1x1_pad": ((1, 3, 4, 5), (2, 3, 1, 1), dict(padding=1)),
    "k7s2p3": ((1, 3, 15, 16), (4, 3, 7, 7), dict(stride=2, padding=3)),
    "same_even": ((2, 3, 6, 7), (4, 3, 2, 4), dict(padding="same")),
    "same_even_dilated": ((1, 2, 7, 6), (3, 2, 4, 2), dict(padding="same", dilation=(1, 3))),
    "valid": ((2, 3, 6, 7), (4, 3, 3, 2), dict(padding="valid")),
    "wide": ((1, 2, 3, 41), (3, 2, 1, 3), dict(stride=(1, 2), padding=(0, 1))),
    "tiles": ((2, 17, 9, 11), (33, 17, 3, 3), dict(padding=1)),
    "stride_2x3": ((2, 3, 11, 13), (5, 3, 3, 4), dict(stride=(2, 3), padding=(1, 2))),
    "stride_dilation": ((1, 3, 13, 12), (4, 3, 3, 3), dict(stride=2, dilation=2, padding=1)),
    # Many output channels on narrow images: the im2col gather instead of padded planes, with
    # several images side by side in one GEMM.
    "strided_many_channels": ((2, 2, 8, 8), (512, 2, 3, 3), dict(stride=2, padding=1)),
    "narrow_many_channels": ((3, 2, 5, 6), (512, 2, 3, 3), dict(padding=1)),
    "lenet_like": ((3, 1, 12, 12), (6, 1, 5, 5), {}),
}

# Tiny shapes for the backend grid (also run on the emulated CUDA backend).
BACKEND_CASES = {k: CASES[k] for k in ["basic", "stride_not_dividing", "groups2", "depthwise",
                                       "conv1x1", "same_even", "dilation2", "kernel_over_input"]}


def make(xs, ws, dtype, salt=""):
    x = random(xs, dtype, "x", salt)
    w = random(ws, dtype, "w", salt)
    b = random((ws[0],), dtype, "b", salt)
    return x, w, b


def depth_forward(ws, bias=True):
    return ws[1] * ws[2] * ws[3] + bool(bias)


def check_forward(x, w, b, kw):
    got = convforge.conv2d(x, w, b, **kw)
    expected = reference.conv2d(x, w, b, **kw)
    magnitude = reference.conv2d(np.abs(x), np.abs(w), None if b is None else np.abs(b), **kw)
    assert got.dtype == x.dtype
    assert_close(got, expected, magnitude, depth_forward(w.shape, b is not None), what="output")
    return got, magnitude


def check_backward(x, w, kw, mask=(True, True, True), salt=""):
    y_shape = reference.conv2d(x, w, None, **kw).shape
    dy = random(y_shape, x.dtype, "dy", salt)
    got = convforge.conv2d_backward(dy, x, w, output_mask=mask, **kw)
    expected = reference.conv2d_backward(dy, x, w, output_mask=mask, **kw)
    magnitude = reference.conv2d_backward(np.abs(dy), np.abs(x), np.abs(w), output_mask=mask, **kw)
    groups = kw.get("groups", 1)
    batched = dy.reshape((-1,) + dy.shape[-3:])
    depths = (
        w.shape[0] // groups * w.shape[2] * w.shape[3],  # grad_input: taps that reach a pixel
        batched.shape[0] * batched.shape[2] * batched.shape[3],  # grad_weight, grad_bias
        batched.shape[0] * batched.shape[2] * batched.shape[3],
    )
    for name, want, g, e, m, d in zip(["grad_input", "grad_weight", "grad_bias"], mask, got,
                                      expected, magnitude, depths):
        if not want:
            assert g is None, name
            continue
        assert g.dtype == x.dtype and g.shape == e.shape, name
        assert_close(g, e, m, d, what=name)
    return dy, got, magnitude, depths


def torch_grads(x, w, b, dy, kw):
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    tb = torch.tensor(b, requires_grad=True)
    y = torch.nn.functional.conv2d(tx, tw, tb, **kw)
    grads = torch.autograd.grad(y, (tx, tw, tb), torch.tensor(dy))
    return y.detach().numpy(), [g.numpy() for g in grads]


# ----------------------------------------------------------------------------------------------
# The reference against central finite differences.


@pytest.mark.parametrize("case", ["basic", "stride_not_dividing", "groups2", "same_even_dilated",
                                  "dilation3", "depthwise_s2"])
def test_reference_against_finite_differences(case):
    xs, ws, kw = CASES[case]
    x, w, b = (a.astype(np.float64) for a in make(xs, ws, np.float64, "fd"))
    y = reference.conv2d(x, w, b, **kw)
    dy = random(y.shape, np.float64, "fd-dy")
    gx, gw, gb = reference.conv2d_backward(dy, x, w, **kw)
    h = 1e-6
    arrays = {"input": x, "weight": w, "bias": b}
    for name, grad in (("input", gx), ("weight", gw), ("bias", gb)):
        arr = arrays[name]
        picks = np.random.default_rng(len(name)).choice(arr.size, size=min(arr.size, 12), replace=False)
        for flat in picks:
            idx = np.unravel_index(flat, arr.shape)
            losses = []
            for step in (h, -h):
                moved = dict(arrays)
                moved[name] = arr.copy()
                moved[name][idx] += step
                y = reference.conv2d(moved["input"], moved["weight"], moved["bias"], **kw)
                losses.append(float(np.sum(y * dy)))
            numeric = (losses[0] - losses[1]) / (2 * h)
            assert abs(numeric - grad[idx]) <= 1e-6 * (1 + abs(numeric)), (name, idx)


# ----------------------------------------------------------------------------------------------
# The fast op against the reference and torch, every ISA.


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", list(CASES))
def test_forward(case, dtype, isa):
    xs, ws, kw = CASES[case]
    x, w, b = make(xs, ws, dtype, case)
    got, magnitude = check_forward(x, w, b, kw)
    if dtype == np.float32:
        check_forward(x, w, None, kw)
    expected = torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(w), torch.tensor(b), **kw)
    assert_close(got, expected.numpy(), 2 * magnitude, depth_forward(ws), what="output vs torch")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", list(CASES))
def test_backward(case, dtype, isa):
    xs, ws, kw = CASES[case]
    x, w, b = make(xs, ws, dtype, case)
    dy, got, magnitude, depths = check_backward(x, w, kw, salt=case)
    _, expected = torch_grads(x, w, b, dy, kw)
    for name, g, e, m, d in zip(["grad_input", "grad_weight", "grad_bias"], got, expected,
                                magnitude, depths):
        assert_close(g, e, 2 * m, d, what=name + " vs torch")


@pytest.mark.parametrize("case", list(BACKEND_CASES))
def test_backend(case, backend):
    xs, ws, kw = BACKEND_CASES[case]
    x, w, b = make(xs, ws, np.float32, case)
    check_forward(x, w, b, kw)
    check_backward(x, w, kw, salt=case)


@pytest.mark.parametrize("mask", list(itertools.product([False, True], repeat=3)))
def test_output_mask(mask):
    xs, ws, kw = CASES["groups2"]
    x, w, _ = make(xs, ws, np.float32)
    check_backward(x, w, kw, mask)


@pytest.mark.parametrize("mask", [(True, False, False), (False, True, True)])
@pytest.mark.parametrize("case", ["depthwise", "conv1x1", "lenet_like"])
def test_output_mask_special_paths(case, mask):
    xs, ws, kw = CASES[case]
    x, w, _ = make(xs, ws, np.float32)
    check_backward(x, w, kw, mask)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", ["basic", "depthwise", "conv1x1", "same_even"])
def test_unbatched(case, dtype):
    xs, ws, kw = CASES[case]
    x, w, b = make((1,) + xs[1:], ws, dtype, case)
    x = x[0]
    got = convforge.conv2d(x, w, b, **kw)
    assert got.ndim == 3
    check_forward(x, w, b, kw)
    dy, grads, _, _ = check_backward(x, w, kw)
    assert grads[0].shape == x.shape
    _, expected = torch_grads(x, w, b, dy, kw)
    assert_close(grads[1], expected[1], np.abs(expected[1]) + 1, dy.size, what="grad_weight vs torch")


@pytest.mark.parametrize("case", ["basic", "depthwise", "conv1x1"])
def test_non_contiguous(case):
    xs, ws, kw = CASES[case]
    big = random((xs[0], xs[1], xs[2] * 2, xs[3] + 3), np.float32, "big")
    x = big[:, :, ::2, 1: 1 + xs[3]]
    w = np.asfortranarray(random(ws, np.float32, "w"))
    b = random((2 * ws[0],), np.float32, "b")[::2]
    assert not x.flags.c_contiguous and not b.flags.c_contiguous
    check_forward(x, w, b, kw)
    y = reference.conv2d(x, w, None, **kw)
    dy = np.swapaxes(random(y.shape[:2] + y.shape[:1:-1], np.float32, "dyT"), 2, 3)
    got = convforge.conv2d_backward(dy, x, w, **kw)
    expected = reference.conv2d_backward(dy, x, w, **kw)
    magnitude = reference.conv2d_backward(np.abs(dy), np.abs(x), np.abs(w), **kw)
    for g, e, m in zip(got, expected, magnitude):
        assert_close(g, e, m, y.size)


# ----------------------------------------------------------------------------------------------
# channels_last (NHWC) arrays: read and written in place, memory formats as torch's.


def nhwc(a):
    """The array in dense NHWC memory (OHWI for a weight), viewed as NCHW: torch's channels_last."""
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


def is_channels_last(a):
    """NHWC memory that is not also C-contiguous (for NumPy arrays and torch tensors)."""
    if isinstance(a, torch.Tensor):
        return a.is_contiguous(memory_format=torch.channels_last) and not a.is_contiguous()
    return a.transpose(0, 2, 3, 1).flags.c_contiguous and not a.flags.c_contiguous


def ambiguous(shape):
    """Whether an array of this shape is both NCHW and NHWC in memory (one channel, or a 1x1
    plane): NumPy's strides cannot say which (torch keeps a flag)."""
    return nhwc(np.empty(shape)).flags.c_contiguous


# A weight that is both OIHW and OHWI (one input channel per group, or 1x1) shows channels_last
# only through the input.
LAYOUT_CASES = [(case, x_cl, w_cl)
                for case in ["basic", "stride_2x3", "groups2", "depthwise_x2", "conv1x1", "tiles", "same_even",
                             "dilation3", "k7s2p3"]
                for x_cl, w_cl in [(True, False), (False, True), (True, True)]
                if x_cl or not ambiguous(CASES[case][1])]


@pytest.mark.parametrize("case,x_cl,w_cl", LAYOUT_CASES)
def test_channels_last_as_torch(case, x_cl, w_cl, isa):
    """Any mix of NHWC and NCHW input and weight: values as torch's, and the output, grad_input and
    grad_weight in the memory formats torch gives them."""
    xs, ws, kw = CASES[case]
    x, w, b = make(xs, ws, np.float32, case)
    dy = random(reference.conv2d(x, w, None, **kw).shape, np.float32, "dy", case)
    xin, win = (nhwc(x) if x_cl else x), (nhwc(w) if w_cl else w)
    tf = torch.channels_last
    tx = torch.tensor(x).to(memory_format=tf if x_cl else torch.contiguous_format).requires_grad_()
    tw = torch.tensor(w).to(memory_format=tf if w_cl else torch.contiguous_format).requires_grad_()
    ty = torch.nn.functional.conv2d(tx, tw, torch.tensor(b), **kw)
    ty.backward(torch.tensor(dy).to(memory_format=tf))
    got = convforge.conv2d(xin, win, b, **kw)
    grads = convforge.conv2d_backward(nhwc(dy), xin, win, **kw)
    expected = reference.conv2d(x, w, b, **kw)
    magnitude = reference.conv2d(np.abs(x), np.abs(w), np.abs(b), **kw)
    assert_close(got, expected, magnitude, depth_forward(ws))
    assert_close(got, ty.detach().numpy(), magnitude, depth_forward(ws), what="output vs torch")
    expected = reference.conv2d_backward(dy, x, w, **kw)
    magnitude = reference.conv2d_backward(np.abs(dy), np.abs(x), np.abs(w), **kw)
    for name, g, e, m in zip(("grad_input", "grad_weight", "grad_bias"), grads, expected, magnitude):
        assert_close(g, e, m, dy.size, what=name)
    # grad_input in the format of torch's convolution_backward (the output's); autograd then
    # gives a leaf's .grad its own layout, as convforge.torch's ops do through autograd too.
    assert is_channels_last(got) == is_channels_last(ty) == is_channels_last(grads[0])
    assert is_channels_last(grads[1]) == (w_cl and not ambiguous(ws))


@pytest.mark.parametrize("case", ["basic", "groups2", "conv1x1", "stride_dilation"])
def test_channels_last_views(case):
    """Sliced and strided NHWC views (channels_last by their strides, not dense): copied once into
    NHWC memory; the results are NHWC."""
    xs, ws, kw = CASES[case]
    n, c, h, w_ = xs
    big = random((n, h + 3, w_ * 2, c * 2), np.float32, "big", case)
    x = big[:, 1:h + 1, ::2, ::2].transpose(0, 3, 1, 2)
    w = random(ws, np.float32, "w", case)
    b = random((ws[0],), np.float32, "b", case)
    assert not x.flags.c_contiguous and not x.transpose(0, 2, 3, 1).flags.c_contiguous
    got = convforge.conv2d(x, w, b, **kw)
    assert is_channels_last(got)
    check_forward(np.ascontiguousarray(x), w, b, kw)
    assert_close(got, reference.conv2d(x, w, b, **kw), reference.conv2d(np.abs(x), np.abs(w), np.abs(b), **kw),
                 depth_forward(ws))
    dy_big = random((n, got.shape[2], got.shape[3] + 1, ws[0]), np.float32, "dy", case)
    dy = dy_big[:, :, 1:].transpose(0, 3, 1, 2)
    grads = convforge.conv2d_backward(dy, x, w, **kw)
    expected = reference.conv2d_backward(dy, x, w, **kw)
    magnitude = reference.conv2d_backward(np.abs(dy), np.abs(x), np.abs(w), **kw)
    for g, e, m in zip(grads, expected, magnitude):
        assert_close(g, e, m, dy.size)
    assert is_channels_last(grads[0])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("xs,ws", [
    ((3, 3, 10, 9), (64, 3, 3, 3)),   # many output channels, few taps: dW^T (k x c_out) as the GEMM
    ((3, 16, 10, 9), (8, 16, 3, 3)),  # few output channels: dW (c_out x k)
])
def test_channels_last_grad_weight_orientations(xs, ws, dtype, isa):
    """nhwc_gemm_im2col's weight gradient runs as dW or as its transpose, whichever fills the
    register tiles better: both against the reference."""
    x, w, _ = make(xs, ws, dtype, "orientation")
    kw = dict(padding=1)
    dy = random(reference.conv2d(x, w, None, **kw).shape, dtype, "dy")
    got = convforge.conv2d_backward(nhwc(dy), nhwc(x), nhwc(w), output_mask=(False, True, False),
                                    algorithm="nhwc_gemm_im2col", **kw)[1]
    assert is_channels_last(got)
    expected = reference.conv2d_backward(dy, x, w, output_mask=(False, True, False), **kw)[1]
    magnitude = reference.conv2d_backward(np.abs(dy), np.abs(x), np.abs(w), output_mask=(False, True, False),
                                          **kw)[1]
    assert_close(got, expected, magnitude, dy.shape[0] * dy.shape[2] * dy.shape[3])


def test_channels_last_unbatched():
    """An HWC image viewed as CHW gives a C-contiguous output, as in torch (whose unsqueezed
    batch stride does not order it channels_last)."""
    xs, ws, kw = CASES["basic"]
    x, w, b = make(xs, ws, np.float32, "unbatched")
    image = nhwc(x)[0]
    got = convforge.conv2d(image, w, b, **kw)
    torch_y = torch.nn.functional.conv2d(torch.tensor(x[0]).permute(1, 2, 0).contiguous().permute(2, 0, 1),
                                         torch.tensor(w), torch.tensor(b), **kw)
    assert got.shape == tuple(torch_y.shape)
    assert got.flags.c_contiguous and torch_y.is_contiguous()
    assert_close(got, torch_y.numpy(), reference.conv2d(np.abs(x), np.abs(w), np.abs(b), **kw)[0],
                 depth_forward(ws))


def test_channels_last_backends(backend):
    """The CUDA backends read NCHW: NHWC arrays are copied, and the results come back NHWC."""
    xs, ws, kw = CASES["groups2"]
    x, w, b = make(xs, ws, np.float32, "backends")
    got = convforge.conv2d(nhwc(x), w, b, **kw)
    assert is_channels_last(got)
    check_forward(x, w, b, kw)
    assert_close(got, reference.conv2d(x, w, b, **kw), reference.conv2d(np.abs(x), np.abs(w), np.abs(b), **kw),
                 depth_forward(ws))
    dy = random(got.shape, np.float32, "dy")
    grads = convforge.conv2d_backward(nhwc(dy), nhwc(x), nhwc(w), **kw)
    assert is_channels_last(grads[0]) and is_channels_last(grads[1])
    expected = reference.conv2d_backward(dy, x, w, **kw)
    magnitude = reference.conv2d_backward(np.abs(dy), np.abs(x), np.abs(w), **kw)
    for g, e, m in zip(grads, expected, magnitude):
        assert_close(g, e, m, dy.size)


# ----------------------------------------------------------------------------------------------
# Determinism: the same bits on every run and for any thread count.


@pytest.mark.parametrize("case", ["tiles", "depthwise", "conv1x1", "lenet_like", "k7s2p3"])
def test_deterministic(case, threads):
    xs, ws, kw = CASES[case]
    xs = (8,) + xs[1:]  # enough images for the batch to be split
    x, w, b = make(xs, ws, np.float32, case)
    dy = random(reference.conv2d(x, w, None, **kw).shape, np.float32, "dy")
    results = []
    for n_threads in (1, 2, 2, 1):
        threads(n_threads)
        results.append((convforge.conv2d(x, w, b, **kw), *convforge.conv2d_backward(dy, x, w, **kw),
                        convforge.conv2d(nhwc(x), w, b, **kw),
                        *convforge.conv2d_backward(nhwc(dy), nhwc(x), nhwc(w), **kw)))
    for other in results[1:]:
        for a, c in zip(results[0], other):
            assert np.array_equal(a, c)


def test_nhwc_grad_bias_split_over_threads(threads):
    """NHWC grad_bias large enough to be split over the threads: the float64 sum, same bits."""
    x, w, _ = make((4, 2, 48, 48), (64, 2, 1, 1), np.float32, "bias_split")
    dy = random((4, 64, 48, 48), np.float32, "dy")
    expected = dy.astype(np.float64).sum(axis=(0, 2, 3))
    results = []
    for n_threads in (1, 2, 3):
        threads(n_threads)
        results.append(convforge.conv2d_backward(nhwc(dy), nhwc(x), nhwc(w), output_mask=(False, False, True))[2])
    assert_close(results[0], expected, np.abs(dy).astype(np.float64).sum(axis=(0, 2, 3)), 4 * 48 * 48)
    for other in results[1:]:
        assert np.array_equal(results[0], other)


@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
def test_flipped_weight_split_over_threads(layout, threads):
    """grad_input as the flipped-weight forward, with a weight large enough for its flip to be split
    over the threads (weight in the other layout, so the flip also converts it): the reference, same bits."""
    xs, ws, kw = (1, 256, 5, 4), (256, 256, 3, 3), dict(padding=1)
    x, w, _ = make(xs, ws, np.float32, "flip_split")
    dy = random(xs, np.float32, "dy")
    args = (nhwc(dy), nhwc(x), w) if layout == "nhwc" else (dy, x, nhwc(w))
    results = []
    for n_threads in (1, 2, 3):
        threads(n_threads)
        results.append(convforge.conv2d_backward(*args, output_mask=(True, False, False), **kw)[0])
    expected = reference.conv2d_backward(dy, x, w, output_mask=(True, False, False), **kw)[0]
    magnitude = reference.conv2d_backward(np.abs(dy), np.abs(x), np.abs(w), output_mask=(True, False, False), **kw)[0]
    assert_close(results[0], expected, magnitude, 256 * 9)
    for other in results[1:]:
        assert np.array_equal(results[0], other)


# ----------------------------------------------------------------------------------------------
# Bad input: a clear error naming the argument.

X = np.zeros((2, 4, 8, 8), np.float32)
W = np.zeros((6, 4, 3, 3), np.float32)


@pytest.mark.parametrize("call,error,match", [
    (lambda: convforge.conv2d(X, np.zeros((6, 3, 3, 3), np.float32)), ValueError, "weight"),
    (lambda: convforge.conv2d(X, np.zeros((6, 2, 3, 3), np.float32), groups=3), ValueError, "groups"),
    (lambda: convforge.conv2d(X, np.zeros((6, 1, 3, 3), np.float32), groups=4), ValueError, "groups"),
    (lambda: convforge.conv2d(X, W, groups=0), ValueError, "groups"),
    (lambda: convforge.conv2d(X, np.zeros((6, 4, 11, 3), np.float32), padding=1), ValueError, "weight"),
    (lambda: convforge.conv2d(X, W, stride=0), ValueError, "stride"),
    (lambda: convforge.conv2d(X, W, stride=(1, -1)), ValueError, "stride"),
    (lambda: convforge.conv2d(X, W, dilation=0), ValueError, "dilation"),
    (lambda: convforge.conv2d(X, W, dilation=-2), ValueError, "dilation"),
    (lambda: convforge.conv2d(X, W, padding=-1), ValueError, "padding"),
    (lambda: convforge.conv2d(X, W, padding="full"), ValueError, "padding"),
    (lambda: convforge.conv2d(X, W, padding="same", stride=2), ValueError, "same"),
    (lambda: convforge.conv2d(X.astype(np.int32), W), TypeError, "input"),
    (lambda: convforge.conv2d(X.astype(np.float64), W), TypeError, "weight"),
    (lambda: convforge.conv2d(X, W, np.zeros(6, np.float64)), TypeError, "bias"),
    (lambda: convforge.conv2d(X, W, np.zeros(5, np.float32)), ValueError, "bias"),
    (lambda: convforge.conv2d(X[0, 0], W), ValueError, "input"),
    (lambda: convforge.conv2d(X[None], W), ValueError, "input"),
    (lambda: convforge.conv2d(X, W[0]), ValueError, "weight"),
    (lambda: convforge.conv2d(X.tolist(), W), TypeError, "input"),
    (lambda: convforge.conv2d_backward(np.zeros((2, 6, 5, 6), np.float32), X, W), ValueError,
     "grad_output"),
    (lambda: convforge.conv2d_backward(np.zeros((2, 6, 6, 6), np.float64), X, W), TypeError,
     "grad_output"),
    (lambda: convforge.conv2d_backward(np.zeros((2, 6, 6, 6), np.float32), X,
                                       np.zeros((6, 3, 3, 3), np.float32)), ValueError, "weight"),
])
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize("call,error,match", [
    (lambda: reference.conv2d(X, np.zeros((6, 3, 3, 3), np.float32)), ValueError, "weight"),
    (lambda: reference.conv2d(X, W, groups=3), ValueError, "groups"),
    (lambda: reference.conv2d(X, W, stride=0), ValueError, "stride"),
    (lambda: reference.conv2d(X, W, padding="same", stride=2), ValueError, "same"),
    (lambda: reference.conv2d(X, np.zeros((6, 4, 11, 3), np.float32)), ValueError, "weight"),
])
def test_reference_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()
