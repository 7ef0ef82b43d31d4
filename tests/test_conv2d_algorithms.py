"""The CPU conv2d algorithm list: every algorithm forced on every case and pass it applies to,
on every ISA, against the float64 reference; the chooser's picks; Winograd's error contract."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import convforge
from convforge import reference
from helpers import assert_close, random
from test_conv2d import CASES, check_backward, check_forward, make

pytestmark = pytest.mark.filterwarnings("ignore:Using padding=.same. with even kernel")

ALGORITHMS = list(convforge.conv2d_algorithms())
PASSES = ("forward", "grad_input", "grad_weight")
EPS32 = np.finfo(np.float32).eps

# Winograd's awkward grid: sizes that are not multiples of the 4x4 tile, 1x1 and 2x2 images,
# padding 0 / 1 / 2 / 'same', groups, batch 1, one channel and many channels.
WINOGRAD_CASES = {
    "tile_remainders": ((2, 5, 7, 9), (6, 5, 3, 3), dict(padding=1)),
    "image_1x1": ((3, 4, 1, 1), (5, 4, 3, 3), dict(padding=1)),
    "image_2x2": ((2, 3, 2, 2), (4, 3, 3, 3), dict(padding=2)),
    "pad0": ((1, 6, 11, 6), (7, 6, 3, 3), {}),
    "pad2": ((2, 3, 6, 13), (2, 3, 3, 3), dict(padding=2)),
    "pad_1x2": ((1, 4, 9, 10), (3, 4, 3, 3), dict(padding=(1, 2))),
    "same": ((2, 8, 10, 7), (8, 8, 3, 3), dict(padding="same")),
    "groups": ((2, 12, 9, 9), (18, 4, 3, 3), dict(groups=3, padding=1)),
    "depthwise": ((1, 6, 8, 8), (6, 1, 3, 3), dict(groups=6, padding=1)),
    "batch1_c1": ((1, 1, 13, 14), (3, 1, 3, 3), dict(padding=1)),
    "wide_c": ((1, 160, 6, 6), (40, 160, 3, 3), dict(padding=1)),
    "many_tiles": ((3, 17, 21, 37), (33, 17, 3, 3), dict(padding=1)),
}
ALL_CASES = {**CASES, **{"winograd_" + k: v for k, v in WINOGRAD_CASES.items()}}


LAYOUTS = ("nchw", "nhwc")
# The algorithms with grad_weight loops of their own; every forward also serves grad_input (as the
# flipped-weight forward, stride 1).
GRAD_WEIGHT_ALGORITHMS = ("direct", "winograd_f4x3", "winograd_f2x3", "gemm_im2col", "nhwc_direct",
                          "nhwc_gemm_im2col")
GRAD_WEIGHT_ONLY = ("winograd_f2x3",)
WINOGRAD = ("winograd_f4x3", "winograd_f2x3")


def nhwc(a):
    """The array in dense NHWC memory (OHWI for a weight), viewed as NCHW: torch's channels_last."""
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


def in_layout(a, layout):
    """Whether the array's memory is dense in the layout (both, where they coincide)."""
    return (a.transpose(0, 2, 3, 1) if layout == "nhwc" else a).flags.c_contiguous


def chosen(xs, ws, kw, pass_="forward", dtype=np.float32, algorithm="auto", layout="nchw"):
    return convforge.conv2d_algorithm(xs, ws, pass_=pass_, dtype=dtype, algorithm=algorithm,
                                      channels_last=layout == "nhwc", **kw)


def applies(name, case, pass_, dtype, layout):
    xs, ws, kw = ALL_CASES[case]
    if layout == "nhwc" and nhwc(np.empty(xs)).flags.c_contiguous:  # one channel or pixel: the
        return False  # layouts coincide, and NumPy's strides cannot tell them apart
    try:
        chosen(xs, ws, kw, pass_, dtype, name, layout)
    except ValueError:
        return False
    return True


# Every (algorithm, case, pass, dtype, layout) the algorithm applies to, found by asking the
# chooser: every path is reached on purpose, and nothing is collected only to be skipped.
GRID = [(a, c, p, d, l) for a in ALGORITHMS for c in ALL_CASES for p in PASSES for d in (np.float32, np.float64)
        for l in LAYOUTS if applies(a, c, p, d, l)]


def test_every_algorithm_has_cases():
    for name in ALGORITHMS:
        for pass_ in PASSES:
            if pass_ == "grad_weight" and name not in GRAD_WEIGHT_ALGORITHMS:
                continue
            if pass_ != "grad_weight" and name in GRAD_WEIGHT_ONLY:
                continue
            assert any(a == name and p == pass_ for a, _, p, _, _ in GRID), (name, pass_)


def direct_error(x, w, b, kw, expected):
    return np.max(np.abs(convforge.conv2d(x, w, b, algorithm="gemm_im2col", **kw) - expected), initial=0.0)


def assert_winograd_close(got, expected, direct_err, magnitude, what):
    """Winograd's contract: at most 4x the error of direct float32 summation on the same problem
    (with a floor of a few ulps of the largest output, for problems so small that the direct
    error is zero)."""
    floor = 4 * EPS32 * np.max(magnitude, initial=0.0)
    err = np.max(np.abs(got.astype(np.float64) - expected), initial=0.0)
    assert err <= 4 * max(direct_err, floor), f"{what}: error {err:.3g}, direct {direct_err:.3g}"


@pytest.mark.parametrize("algorithm,case,pass_,dtype,layout", GRID,
                         ids=[f"{a}-{c}-{p}-{np.dtype(d).name}-{l}" for a, c, p, d, l in GRID])
def test_forced_algorithm(algorithm, case, pass_, dtype, layout, isa):
    xs, ws, kw = ALL_CASES[case]
    x, w, b = make(xs, ws, dtype, case)
    assert chosen(xs, ws, kw, pass_, dtype, algorithm, layout) == algorithm
    # NHWC arrays; the weight OHWI in every other case, else OIHW (converted by the entry point).
    weight_nhwc = layout == "nhwc" and list(ALL_CASES).index(case) % 2 == 0
    xin, win = (nhwc(x), nhwc(w) if weight_nhwc else w) if layout == "nhwc" else (x, w)
    if algorithm not in WINOGRAD:
        if pass_ == "forward":
            got = convforge.conv2d(xin, win, b, algorithm=algorithm, **kw)
            assert in_layout(got, layout)
            assert_close(got, reference.conv2d(x, w, b, **kw),
                         reference.conv2d(np.abs(x), np.abs(w), np.abs(b), **kw), ws[1] * ws[2] * ws[3] + 1)
        else:
            mask = (pass_ == "grad_input", pass_ == "grad_weight", layout == "nhwc")
            y = reference.conv2d(x, w, None, **kw)
            dy = random(y.shape, dtype, "dy", case)
            got = convforge.conv2d_backward(nhwc(dy) if layout == "nhwc" else dy, xin, win, output_mask=mask,
                                            algorithm=algorithm, **kw)
            expected = reference.conv2d_backward(dy, x, w, output_mask=mask, **kw)
            magnitude = reference.conv2d_backward(np.abs(dy), np.abs(x), np.abs(w), output_mask=mask, **kw)
            i = 0 if pass_ == "grad_input" else 1
            assert in_layout(got[i], "nhwc" if layout == "nhwc" and (i == 0 or weight_nhwc) else "nchw")
            pixels = y.shape[0] * y.shape[2] * y.shape[3]
            depth = ws[0] * ws[2] * ws[3] if i == 0 else pixels
            assert_close(got[i], expected[i], magnitude[i], depth, what=pass_)
            if layout == "nhwc":
                assert_close(got[2], expected[2], magnitude[2], pixels, what="grad_bias")
        return
    if pass_ == "forward":
        expected = reference.conv2d(x, w, b, **kw)
        magnitude = reference.conv2d(np.abs(x), np.abs(w), np.abs(b), **kw)
        got = convforge.conv2d(xin, win, b, algorithm=algorithm, **kw)
        assert in_layout(got, layout)
        assert_winograd_close(got, expected, direct_error(x, w, b, kw, expected), magnitude, "output")
        torch_y = torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(w), torch.tensor(b), **kw).numpy()
        assert_winograd_close(got, torch_y.astype(np.float64), direct_error(x, w, b, kw, torch_y), magnitude,
                              "output vs torch")
    else:
        y = reference.conv2d(x, w, None, **kw)
        dy = random(y.shape, dtype, "dy", case)
        i = 0 if pass_ == "grad_input" else 1
        mask = (i == 0, i == 1, False)
        got = convforge.conv2d_backward(nhwc(dy) if layout == "nhwc" else dy, xin, win, output_mask=mask,
                                        algorithm=algorithm, **kw)[i]
        assert in_layout(got, "nhwc" if layout == "nhwc" and (i == 0 or weight_nhwc) else "nchw")
        expected = reference.conv2d_backward(dy, x, w, output_mask=mask, **kw)[i]
        magnitude = reference.conv2d_backward(np.abs(dy), np.abs(x), np.abs(w), output_mask=mask, **kw)[i]
        direct = convforge.conv2d_backward(dy, x, w, output_mask=mask, algorithm="gemm_im2col", **kw)[i]
        assert_winograd_close(got, expected, np.max(np.abs(direct - expected)), magnitude, pass_)


# ----------------------------------------------------------------------------------------------
# The chooser


@pytest.mark.parametrize("shape,kw,pass_,name", [
    (((1, 64, 56, 56), (64, 64, 3, 3)), dict(padding=1), "forward", "winograd_f4x3"),
    (((1, 64, 56, 56), (64, 64, 3, 3)), dict(padding=1), "grad_input", "winograd_f4x3"),
    (((1, 64, 56, 56), (64, 64, 3, 3)), dict(padding=1), "grad_weight", "gemm_im2col"),
    (((8, 16, 32, 32), (16, 16, 3, 3)), dict(padding=1), "forward", "winograd_f4x3"),
    (((8, 16, 32, 32), (16, 16, 3, 3)), dict(padding=1), "grad_weight", "gemm_im2col"),
    (((8, 128, 28, 28), (128, 128, 3, 3)), dict(padding=1), "grad_weight", "winograd_f4x3"),
    (((8, 64, 4, 4), (64, 64, 3, 3)), dict(padding=1), "forward", "gemm_windows"),
    (((8, 6, 12, 12), (16, 6, 5, 5)), {}, "forward", "gemm_windows"),
    (((1, 3, 32, 32), (32, 3, 3, 3)), dict(padding=1), "forward", "gemm_padded_planes"),
    (((8, 32, 7, 7), (32, 1, 3, 3)), dict(padding=1, groups=32), "forward", "direct"),
    (((8, 32, 7, 7), (32, 1, 3, 3)), dict(padding=1, groups=32), "grad_input", "direct"),
    (((8, 32, 7, 7), (32, 1, 3, 3)), dict(padding=1, groups=32), "grad_weight", "direct"),
    (((8, 64, 28, 28), (16, 64, 1, 1)), {}, "forward", "gemm_pointwise"),
    (((8, 64, 28, 28), (16, 64, 3, 3)), dict(stride=2, padding=1), "grad_input", "gemm_im2col"),
    (((2, 2, 8, 8), (512, 2, 3, 3)), dict(stride=2, padding=1), "forward", "gemm_im2col"),
    # Too few tiles over all images to pay back Winograd's weight transform.
    (((1, 512, 7, 7), (512, 512, 3, 3)), dict(padding=1), "forward", "gemm_im2col"),
    (((8, 512, 7, 7), (512, 512, 3, 3)), dict(padding=1), "forward", "gemm_im2col"),
    (((4, 512, 14, 14), (512, 512, 3, 3)), dict(padding=1), "forward", "winograd_f4x3"),
])
def test_chooser(shape, kw, pass_, name):
    assert chosen(*shape, kw, pass_) == name


@pytest.mark.parametrize("shape,kw,pass_,name", [
    (((8, 64, 28, 28), (16, 64, 1, 1)), {}, "forward", "nhwc_gemm_windows"),
    (((8, 64, 28, 28), (16, 64, 1, 1)), {}, "grad_input", "nhwc_gemm_pointwise"),
    (((8, 16, 28, 28), (64, 16, 1, 1)), {}, "forward", "nhwc_gemm_pointwise"),
    (((8, 16, 28, 28), (64, 16, 1, 1)), {}, "grad_input", "nhwc_gemm_windows"),
    (((8, 64, 28, 28), (16, 64, 1, 1)), {}, "grad_weight", "nhwc_gemm_im2col"),
    (((1, 64, 56, 56), (64, 64, 3, 3)), dict(padding=1), "forward", "winograd_f4x3"),
    (((1, 64, 56, 56), (64, 64, 3, 3)), dict(padding=1), "grad_input", "winograd_f4x3"),
    (((1, 64, 56, 56), (64, 64, 3, 3)), dict(padding=1), "grad_weight", "winograd_f2x3"),
    (((8, 16, 32, 32), (16, 16, 3, 3)), dict(padding=1), "grad_weight", "nhwc_gemm_im2col"),
    (((64, 32, 16, 16), (64, 32, 3, 3)), dict(padding=1), "grad_weight", "winograd_f2x3"),
    (((64, 16, 16, 16), (64, 16, 3, 3)), dict(padding=1), "grad_weight", "nhwc_gemm_im2col"),
    (((8, 128, 28, 28), (128, 128, 3, 3)), dict(padding=1), "grad_weight", "winograd_f2x3"),
    (((8, 256, 14, 14), (256, 256, 3, 3)), dict(padding=1), "grad_weight", "winograd_f2x3"),
    (((8, 512, 7, 7), (512, 512, 3, 3)), dict(padding=1), "grad_weight", "winograd_f2x3"),
    (((8, 64, 56, 56), (64, 64, 3, 3)), dict(stride=2, padding=1), "grad_weight", "nhwc_gemm_im2col"),
    (((8, 16, 4, 4), (16, 16, 3, 3)), dict(padding=1), "forward", "nhwc_gemm_windows"),
    # Too few tiles over all images to pay back Winograd's weight transform, then enough.
    (((4, 512, 7, 7), (512, 512, 3, 3)), dict(padding=1), "forward", "nhwc_gemm_im2col"),
    (((8, 512, 7, 7), (512, 512, 3, 3)), dict(padding=1), "forward", "winograd_f4x3"),
    (((8, 512, 7, 7), (512, 512, 3, 3)), dict(padding=1), "grad_input", "winograd_f4x3"),
    (((64, 3, 32, 32), (32, 3, 3, 3)), dict(padding=1), "forward", "nhwc_gemm_windows"),
    (((8, 32, 12, 12), (16, 32, 5, 5)), {}, "grad_input", "nhwc_gemm_windows"),
    (((8, 6, 12, 12), (16, 6, 5, 5)), {}, "grad_input", "nhwc_gemm_im2col"),
    (((8, 64, 28, 28), (16, 64, 3, 3)), dict(stride=2, padding=1), "grad_input", "nhwc_gemm_im2col"),
])
def test_chooser_nhwc(shape, kw, pass_, name):
    assert chosen(*shape, kw, pass_, layout="nhwc") == name


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weight_layout", ["nchw", "nhwc"])
@pytest.mark.parametrize("shape,kw,name", [
    (((2, 16, 9, 10), (80, 16, 7, 7)), dict(padding=3), "nhwc_gemm_im2col"),  # flipped depth 80 * 49 > 3072
    (((2, 32, 9, 10), (160, 16, 7, 7)), dict(padding=(3, 2), groups=2), "nhwc_gemm_im2col"),
    (((2, 40, 6, 7), (16, 40, 1, 1)), {}, "nhwc_gemm_pointwise"),
    (((2, 40, 6, 7), (16, 20, 1, 1)), dict(groups=2), "nhwc_gemm_pointwise"),
])
def test_nhwc_grad_input_reads_weight_in_place(shape, kw, name, weight_layout, dtype):
    """NHWC grad_input at stride 1 as the flipped forward of these algorithms reads the weight where
    it lies (converted first when given in the other layout), with no flipped copy."""
    xs, ws = shape
    assert chosen(xs, ws, kw, "grad_input", dtype=dtype, layout="nhwc") == name
    x, w, _ = make(xs, ws, dtype, name)
    y = reference.conv2d(x, w, None, **kw)
    dy = random(y.shape, dtype, "dy", name)
    got = convforge.conv2d_backward(nhwc(dy), nhwc(x), nhwc(w) if weight_layout == "nhwc" else w,
                                    output_mask=(True, False, False), **kw)[0]
    assert in_layout(got, "nhwc")
    mask = (True, False, False)
    assert_close(got, reference.conv2d_backward(dy, x, w, output_mask=mask, **kw)[0],
                 reference.conv2d_backward(np.abs(dy), np.abs(x), np.abs(w), output_mask=mask, **kw)[0],
                 ws[0] * ws[2] * ws[3])


def test_chooser_float64_never_winograd():
    assert chosen((1, 64, 56, 56), (64, 64, 3, 3), dict(padding=1), dtype=np.float64) != "winograd_f4x3"


def test_winograd_switch():
    shape = ((4, 64, 16, 16), (64, 64, 3, 3), dict(padding=1))
    assert convforge.winograd_enabled()
    try:
        convforge.set_winograd_enabled(False)
        assert not convforge.winograd_enabled()
        assert chosen(*shape) == "gemm_windows"
        assert chosen(*shape, pass_="grad_input") == "gemm_windows"
        assert chosen(*shape, algorithm="winograd_f4x3") == "winograd_f4x3"  # forcing still works
        x, w, b = make(shape[0], shape[1], np.float32, "switch")
        direct = convforge.conv2d(x, w, b, padding=1, algorithm="gemm_windows")
        assert np.array_equal(convforge.conv2d(x, w, b, padding=1), direct)
    finally:
        convforge.set_winograd_enabled(True)
    assert chosen(*shape) == "winograd_f4x3"


@pytest.mark.parametrize("env,expected", [
    ({"CONVFORGE_WINOGRAD": "0"}, "gemm_windows"),
    ({"CONVFORGE_CONV_ALGORITHM": "gemm_im2col"}, "gemm_im2col"),
    ({"CONVFORGE_CONV_ALGORITHM": "auto"}, "winograd_f4x3"),
])
def test_environment(env, expected):
    code = ("import convforge; print(convforge.conv2d_algorithm((4, 64, 16, 16), (64, 64, 3, 3), "
            "padding=1))")
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == expected


def test_info_lists_algorithms():
    assert convforge.info()["conv_algorithms"] == ALGORITHMS
    assert set(ALGORITHMS) == {"direct", "winograd_f4x3", "winograd_f2x3", "gemm_pointwise", "gemm_padded_planes", "gemm_windows",
                               "gemm_im2col", "nhwc_direct", "nhwc_gemm_pointwise", "nhwc_gemm_windows",
                               "nhwc_gemm_im2col"}


X = np.zeros((2, 4, 8, 8), np.float32)
W = np.zeros((6, 4, 3, 3), np.float32)


@pytest.mark.parametrize("call,error,match", [
    (lambda: convforge.conv2d(X, W, algorithm="fft"), ValueError, "algorithm: expected 'auto' or one of"),
    (lambda: convforge.conv2d(X, W, algorithm=3), TypeError, "algorithm"),
    (lambda: convforge.conv2d(X, W, stride=2, algorithm="winograd_f4x3"), ValueError, "3x3 kernel"),
    (lambda: convforge.conv2d(X.astype(np.float64), W.astype(np.float64), algorithm="winograd_f4x3"),
     ValueError, "float32"),
    (lambda: convforge.conv2d(X, W, algorithm="gemm_pointwise"), ValueError, "1x1"),
    (lambda: convforge.conv2d(nhwc(X), nhwc(W), algorithm="winograd_f2x3"), ValueError, "grad_weight"),
    (lambda: convforge.conv2d_backward(np.zeros((2, 6, 6, 6), np.float32), X, W,
                                       output_mask=(False, True, False), algorithm="winograd_f2x3"),
     ValueError, "NHWC"),
    (lambda: convforge.conv2d_backward(np.zeros((2, 6, 3, 3), np.float32), X, W, stride=2,
                                       output_mask=(False, True, False), algorithm="winograd_f4x3"),
     ValueError, "grad_weight"),
    (lambda: convforge.conv2d_backward(np.zeros((2, 6, 3, 3), np.float32), X, W, stride=2,
                                       output_mask=(True, False, False), algorithm="gemm_padded_planes"),
     ValueError, "grad_input"),
    (lambda: convforge.conv2d_backward(np.zeros((2, 6, 6, 6), np.float32), X, W,
                                       output_mask=(False, True, False), algorithm="direct"),
     ValueError, "grad_weight"),
    (lambda: convforge.conv2d_algorithm((2, 4, 8, 8), (6, 4, 3, 3), pass_="backward"), ValueError, "pass_"),
])
def test_bad_algorithm(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_algorithm_on_cuda_emulated_is_rejected():
    if "cuda-emulated" not in convforge.info()["backends"]:
        pytest.fail("the emulated CUDA backend is part of every build")
    with convforge.host_backend("cuda-emulated"):
        with pytest.raises(ValueError, match="CPU algorithms"):
            convforge.conv2d(X, W, algorithm="gemm_im2col")
        assert convforge.conv2d(X, W).shape == (2, 6, 6, 6)


# ----------------------------------------------------------------------------------------------
# Winograd's numerics: the measured error bound, NaN/Inf, determinism


@pytest.mark.parametrize("shape", [
    ((4, 16, 20, 20), (16, 16, 3, 3)),
    ((4, 32, 16, 16), (64, 32, 3, 3)),
    ((1, 64, 30, 31), (32, 64, 3, 3)),
    ((4, 256, 14, 14), (64, 256, 3, 3)),
    ((16, 512, 8, 8), (32, 512, 3, 3)),
])
def test_auto_winograd_error_at_most_4x_direct(shape, isa):
    """Where "auto" picks Winograd, its largest error against the float64 reference is at most 4x
    that of direct float32 summation (measured 1.6-3.1x on these shapes with AVX2 and AVX-512)."""
    xs, ws = shape
    if isa == "scalar":  # the portable path's direct sums are more accurate: auto keeps them
        assert chosen(xs, ws, dict(padding=1)) != "winograd_f4x3"
        return
    assert chosen(xs, ws, dict(padding=1)) == "winograd_f4x3"
    rng = np.random.default_rng(sum(xs) + sum(ws))
    x = rng.uniform(-1, 1, xs).astype(np.float32)
    w = rng.uniform(-1, 1, ws).astype(np.float32)
    expected = torch.nn.functional.conv2d(torch.tensor(x).double(), torch.tensor(w).double(), padding=1).numpy()
    err = np.max(np.abs(convforge.conv2d(x, w, padding=1) - expected))
    assert err <= 4 * direct_error(x, w, None, dict(padding=1), expected)


@pytest.mark.parametrize("algorithm,layout", [("winograd_f4x3", "nchw"), ("winograd_f4x3", "nhwc"),
                                              ("winograd_f2x3", "nhwc")])
@pytest.mark.parametrize("shape", [
    ((4, 32, 20, 20), (32, 32, 3, 3)),
    ((2, 64, 30, 31), (32, 64, 3, 3)),
    ((2, 64, 17, 18), (64, 64, 3, 3)),
    ((8, 256, 7, 7), (64, 256, 3, 3)),
    ((2, 128, 28, 28), (128, 128, 3, 3)),
])
def test_winograd_grad_weight_error_at_most_4x_direct(shape, algorithm, layout, isa):
    """The same contract for the weight gradient, forced or where "auto" picks it: F(4x4, 3x3)'s
    products sum in double (0.35-1.4x measured; in float32 they erred up to 6x), picked from 128
    channels on 28x28 (NCHW); F(2x2, 3x3)'s sum in float32 (NHWC), picked from 32 channels each side."""
    xs, ws = shape
    kw = dict(padding=1)
    if algorithm == "winograd_f2x3":
        picks = isa != "scalar" and min(xs[1], ws[0]) >= 32
    else:
        picks = isa != "scalar" and layout == "nchw" and min(xs[1], ws[0]) >= 128
    assert (chosen(xs, ws, kw, "grad_weight", layout=layout) == algorithm) == picks
    rng = np.random.default_rng(sum(xs) + sum(ws))
    x = rng.uniform(-1, 1, xs).astype(np.float32)
    w = rng.uniform(-1, 1, ws).astype(np.float32)
    dy = rng.uniform(-1, 1, (xs[0], ws[0], xs[2], xs[3])).astype(np.float32)
    tx, tw = torch.tensor(x).double(), torch.tensor(w).double().requires_grad_()
    torch.nn.functional.conv2d(tx, tw, **kw).backward(torch.tensor(dy).double())
    expected = tw.grad.numpy()
    mask = (False, True, False)
    direct = convforge.conv2d_backward(dy, x, w, output_mask=mask, algorithm="gemm_im2col", **kw)[1]
    args = (nhwc(dy), nhwc(x), nhwc(w)) if layout == "nhwc" else (dy, x, w)
    got = convforge.conv2d_backward(*args, output_mask=mask, algorithm=algorithm, **kw)[1]
    assert np.max(np.abs(got - expected)) <= 4 * np.max(np.abs(direct - expected))


def specials(shape, seed):
    r = np.random.default_rng(seed)
    x = r.uniform(-1, 1, shape).astype(np.float32)
    pick = r.random(shape)
    x[pick < 0.01] = np.nan
    x[(pick >= 0.01) & (pick < 0.02)] = np.inf
    x[(pick >= 0.02) & (pick < 0.03)] = -np.inf
    return x


@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
@pytest.mark.parametrize("where", ["input", "weight", "grad_output"])
def test_winograd_nan_inf_as_torch(where, layout):
    """NaN and Inf would spread over whole tiles through the transforms: Winograd declines and
    the problem runs on direct summation, so they propagate exactly as in torch."""
    xs, ws = (8, 16, 9, 10), (16, 16, 3, 3)
    assert chosen(xs, ws, dict(padding=1)) == "winograd_f4x3"
    x = specials(xs, 1) if where == "input" else random(xs, np.float32, "x")
    w = random(ws, np.float32, "w")
    if where == "weight":
        w[3, 2, 1, 1] = np.inf
    dy = specials((8, 16, 9, 10), 2) if where == "grad_output" else random((8, 16, 9, 10), np.float32, "dy")
    assert chosen(xs, ws, dict(padding=1), layout=layout) == "winograd_f4x3"
    cx, cw, cdy = (nhwc(x), nhwc(w), nhwc(dy)) if layout == "nhwc" else (x, w, dy)
    y = convforge.conv2d(cx, cw, padding=1)
    gx = convforge.conv2d_backward(cdy, cx, cw, padding=1, output_mask=(True, False, False))[0]
    gw = convforge.conv2d_backward(cdy, cx, cw, padding=1, output_mask=(False, True, False),
                                   algorithm="winograd_f4x3")[1]
    grads_w = [gw]
    if layout == "nhwc":
        grads_w.append(convforge.conv2d_backward(cdy, cx, cw, padding=1, output_mask=(False, True, False),
                                                 algorithm="winograd_f2x3")[1])
    tx, tw = torch.tensor(x).double().requires_grad_(), torch.tensor(w).double().requires_grad_()
    ty = torch.nn.functional.conv2d(tx, tw, padding=1)
    ty.backward(torch.tensor(dy).double())
    for got, want in ((y, ty.detach().numpy()), (gx, tx.grad.numpy()), *((g, tw.grad.numpy()) for g in grads_w)):
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_array_equal(np.where(np.isinf(want), want, 0), np.where(np.isinf(got), got, 0))


@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
def test_winograd_forward_splits_output_channels(threads, layout):
    # One image of 4 tiles is one block: 2 and 3 threads share its output channels (several
    # panels of them on every ISA), each part transforming the block's input for itself.
    xs, ws = (1, 24, 8, 7), (80, 24, 3, 3)
    x, w, b = make(xs, ws, np.float32, "split")
    expected = reference.conv2d(x, w, b, padding=1)
    magnitude = reference.conv2d(np.abs(x), np.abs(w), np.abs(b), padding=1)
    direct_err = direct_error(x, w, b, dict(padding=1), expected)
    cx, cw = (nhwc(x), nhwc(w)) if layout == "nhwc" else (x, w)
    results = []
    for n in (1, 2, 3):
        threads(n)
        results.append(convforge.conv2d(cx, cw, b, padding=1, algorithm="winograd_f4x3"))
        assert_winograd_close(results[-1], expected, direct_err, magnitude, f"{n} threads")
    assert all(np.array_equal(results[0], r) for r in results[1:])


@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
def test_winograd_deterministic(threads, layout):
    xs, ws = (6, 24, 23, 19), (40, 24, 3, 3)
    x, w, b = make(xs, ws, np.float32, "det")
    dy = random((6, 40, 23, 19), np.float32, "dy")
    if layout == "nhwc":
        x, w, dy = nhwc(x), nhwc(w), nhwc(dy)
    results = []
    for n in (1, 2, 3, 2, 1):
        threads(n)
        result = (convforge.conv2d(x, w, b, padding=1, algorithm="winograd_f4x3"),
                  *convforge.conv2d_backward(dy, x, w, padding=1, output_mask=(True, True, False),
                                             algorithm="winograd_f4x3")[:2])
        if layout == "nhwc":  # F(2x2, 3x3): 5 slices, taken whole by 2 threads, shared by 1 or 3
            result += convforge.conv2d_backward(dy, x, w, padding=1, output_mask=(False, True, False),
                                                algorithm="winograd_f2x3")[1:2]
        results.append(result)
    for other in results[1:]:
        for a, c in zip(results[0], other):
            assert np.array_equal(a, c)
