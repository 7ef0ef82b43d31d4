"""The nhwc_direct conv2d algorithm (NHWC arrays, one input channel per group): forced on awkward
shapes, every pass, every ISA, float32 and float64, OHWI and OIHW weights, against the float64
reference and torch's channels_last; the chooser picking it; results independent of the thread
count."""

import numpy as np
import pytest
import torch

import convforge
from convforge import reference
from helpers import assert_close, random

pytestmark = pytest.mark.filterwarnings("ignore:Using padding=.same. with even kernel")

ALGORITHM = "nhwc_direct"
PASSES = ("forward", "grad_input", "grad_weight")

# (input shape, weight shape, conv arguments): multipliers 1, 2 and 3, one input channel to six
# output channels, strides, dilations, padding 0 / 1 / 'same' / wider than the kernel, rectangular
# kernels, 1x1 images and kernels, batch 1, odd sizes, channel counts that are not multiples of a
# vector (70 = 4 x 16 + 6), grad_weight's chunks of 64 output channels starting inside a group.
CASES = {
    "m1_pad1": ((2, 8, 9, 11), (8, 1, 3, 3), dict(padding=1, groups=8)),
    "m1_pad0_batch1": ((1, 19, 7, 10), (19, 1, 3, 3), dict(groups=19)),
    "m1_wide_channels": ((1, 70, 5, 37), (70, 1, 3, 3), dict(padding=1, groups=70)),
    "m1_stride2": ((2, 33, 9, 12), (33, 1, 3, 3), dict(stride=2, padding=1, groups=33)),
    "m1_big_pad": ((1, 3, 4, 5), (3, 1, 3, 3), dict(padding=3, groups=3)),
    "m1_same_5x5": ((3, 16, 8, 13), (16, 1, 5, 5), dict(padding="same", groups=16)),
    "m2_stride2": ((2, 6, 9, 8), (12, 1, 3, 3), dict(stride=2, padding=1, groups=6)),
    "m2_same_even_kernel": ((1, 4, 6, 7), (8, 1, 4, 2), dict(padding="same", groups=4)),
    "m2_kernel_1x1": ((2, 20, 5, 6), (40, 1, 1, 1), dict(groups=20)),
    "m2_stride3_over_kernel": ((2, 33, 10, 11), (66, 1, 2, 2), dict(stride=3, groups=33)),
    "m3_dilation2": ((2, 5, 11, 12), (15, 1, 3, 3), dict(dilation=2, padding=2, groups=5)),
    "m3_chunks": ((1, 50, 6, 7), (150, 1, 3, 3), dict(padding=1, groups=50)),  # chunks of 64 channels
    "m1_7x7": ((1, 24, 12, 15), (24, 1, 7, 7), dict(padding=3, groups=24)),
    "m3_rect": ((2, 12, 9, 14), (36, 1, 3, 5), dict(stride=(2, 3), padding=(1, 2), dilation=(2, 1), groups=12)),
    "c1_to_6": ((2, 1, 12, 9), (6, 1, 5, 5), {}),
    "c1_to_20_3x3": ((2, 1, 9, 19), (20, 1, 3, 3), dict(padding=1)),
    "c1_to_6_stride2": ((1, 1, 13, 14), (6, 1, 3, 3), dict(stride=2, padding=1)),
    "image_1x1": ((2, 24, 1, 1), (24, 1, 3, 3), dict(padding=2, groups=24)),
    "long_sums": ((8, 32, 28, 28), (32, 1, 3, 3), dict(padding=1, groups=32)),
}


def nhwc(a):
    """a (NCHW values) as a dense NHWC array viewed as NCHW. A fresh buffer: NumPy gives a
    C-contiguous array whose channel or width dimension has size 1 its NCHW strides."""
    out = np.empty((a.shape[0], a.shape[2], a.shape[3], a.shape[1]), a.dtype)
    out[...] = a.transpose(0, 2, 3, 1)
    return out.transpose(0, 3, 1, 2)


def is_nhwc(a):
    n, c, h, w = a.shape
    return a.strides == tuple(s * a.itemsize for s in (h * w * c, 1, w * c, c))


def make(case, dtype):
    xs, ws, kw = CASES[case]
    x = random(xs, dtype, "x", case)
    w = random(ws, dtype, "w", case)
    b = random((ws[0],), dtype, "b", case)
    return x, w, b, kw


def grad_output(x, w, kw, case, dtype):
    return random(reference.conv2d(x, w, None, **kw).shape, dtype, "dy", case)


def torch_channels_last(x, w, b, dy, kw):
    """torch's float64 forward and gradients on channels_last tensors."""
    cl = torch.channels_last
    tx = torch.tensor(x, dtype=torch.float64).contiguous(memory_format=cl).requires_grad_()
    tw = torch.tensor(w, dtype=torch.float64).contiguous(memory_format=cl).requires_grad_()
    ty = torch.nn.functional.conv2d(tx, tw, torch.tensor(b, dtype=torch.float64), **kw)
    ty.backward(torch.tensor(dy, dtype=torch.float64).contiguous(memory_format=cl))
    return ty.detach().numpy(), tx.grad.numpy(), tw.grad.numpy()


GRID = [(c, p) for c in CASES for p in PASSES]


@pytest.mark.parametrize("weight_layout", ["ohwi", "oihw"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("case,pass_", GRID, ids=[f"{c}-{p}" for c, p in GRID])
def test_forced(case, pass_, dtype, weight_layout, isa):
    x, w, b, kw = make(case, dtype)
    dy = grad_output(x, w, kw, case, dtype)
    xn, dyn = nhwc(x), nhwc(dy)
    wn = nhwc(w) if weight_layout == "ohwi" else w
    assert convforge.conv2d_algorithm(x.shape, w.shape, pass_=pass_, dtype=dtype, algorithm=ALGORITHM,
                                      channels_last=True, **kw) == ALGORITHM
    torch_y, torch_gx, torch_gw = torch_channels_last(x, w, b, dy, kw)
    taps = w.shape[2] * w.shape[3]
    if pass_ == "forward":
        got = convforge.conv2d(xn, wn, b, algorithm=ALGORITHM, **kw)
        assert is_nhwc(got)
        expected = reference.conv2d(x, w, b, **kw)
        magnitude = reference.conv2d(np.abs(x), np.abs(w), np.abs(b), **kw)
        depth, want_torch = taps + 1, torch_y
    else:
        i = 0 if pass_ == "grad_input" else 1
        mask = (i == 0, i == 1, False)
        got = convforge.conv2d_backward(dyn, xn, wn, output_mask=mask, algorithm=ALGORITHM, **kw)[i]
        # grad_input in the activations' layout, grad_weight in the weight's.
        assert is_nhwc(got) == (i == 0 or weight_layout == "ohwi") or got.shape[1:] == (1, 1, 1)
        expected = reference.conv2d_backward(dy, x, w, output_mask=mask, **kw)[i]
        magnitude = reference.conv2d_backward(np.abs(dy), np.abs(x), np.abs(w), output_mask=mask, **kw)[i]
        multiplier = w.shape[0] // kw.get("groups", 1)
        depth = multiplier * taps if i == 0 else dy.shape[0] * dy.shape[2] * dy.shape[3]
        want_torch = torch_gx if i == 0 else torch_gw
    assert got.dtype == dtype
    assert_close(got, expected, magnitude, depth, what=pass_)
    assert_close(got, want_torch, magnitude, depth, what=pass_ + " vs torch")


# ----------------------------------------------------------------------------------------------
# The chooser


@pytest.mark.parametrize("xs,ws,kw", [
    ((8, 128, 56, 56), (128, 1, 3, 3), dict(padding=1, groups=128)),    # the suite's depthwise layer
    ((8, 32, 14, 14), (32, 1, 3, 3), dict(stride=2, padding=1, groups=32)),
    ((2, 16, 10, 10), (48, 1, 5, 5), dict(padding=2, groups=16)),       # multiplier 3
    ((2, 16, 10, 10), (32, 1, 1, 1), dict(groups=16)),                  # 1x1, multiplier 2
    ((2, 16, 10, 10), (16, 1, 3, 3), dict(padding=2, dilation=2, groups=16)),
    ((64, 1, 28, 28), (32, 1, 5, 5), dict(padding=2)),                  # a first layer on grey images
])
@pytest.mark.parametrize("pass_", PASSES)
def test_chooser_picks_it(xs, ws, kw, pass_):
    # grad_input at stride 1 with multiplier 1 runs as the flipped forward, itself depthwise.
    assert convforge.conv2d_algorithm(xs, ws, pass_=pass_, channels_last=True, **kw) == ALGORITHM


@pytest.mark.parametrize("pass_", PASSES)
def test_chooser_leaves_other_problems(pass_):
    # NCHW depthwise stays with `direct`; NHWC with two input channels per group is a GEMM.
    assert convforge.conv2d_algorithm((2, 16, 10, 10), (16, 1, 3, 3), pass_=pass_, padding=1,
                                      groups=16) == "direct"
    assert convforge.conv2d_algorithm((2, 16, 10, 10), (16, 2, 3, 3), pass_=pass_, padding=1, groups=8,
                                      channels_last=True) != ALGORITHM


@pytest.mark.parametrize("xs,ws,kw,channels_last,match", [
    ((2, 16, 10, 10), (16, 1, 3, 3), dict(groups=16), False, "NHWC"),
    ((2, 16, 10, 10), (16, 2, 3, 3), dict(groups=8), True, "one input channel per group"),
])
def test_forced_where_it_does_not_apply(xs, ws, kw, channels_last, match):
    for pass_ in PASSES:
        with pytest.raises(ValueError, match=match):
            convforge.conv2d_algorithm(xs, ws, pass_=pass_, algorithm=ALGORITHM, channels_last=channels_last, **kw)


def test_listed():
    assert ALGORITHM in convforge.conv2d_algorithms()


# ----------------------------------------------------------------------------------------------
# Determinism


@pytest.mark.parametrize("case", ["m1_stride2", "m3_rect", "long_sums", "c1_to_6"])
def test_independent_of_thread_count(case, threads):
    x, w, b, kw = make(case, np.float32)
    dy = grad_output(x, w, kw, case, np.float32)
    xn, wn, dyn = nhwc(x), nhwc(w), nhwc(dy)
    results = []
    for n in (1, 2, 3, 2, 1):
        threads(n)
        y = convforge.conv2d(xn, wn, b, algorithm=ALGORITHM, **kw)
        gx, gw, _ = convforge.conv2d_backward(dyn, xn, wn, output_mask=(True, True, False), algorithm=ALGORITHM,
                                              **kw)
        results.append((y, gx, gw))
    for other in results[1:]:
        for a, c in zip(results[0], other):
            assert np.array_equal(a, c)
