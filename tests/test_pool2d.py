import numpy as np
import pytest
import torch
import torch.nn.functional as F

import convforge
from convforge import _C, reference
from convforge._arrays import channels_last
from helpers import assert_close, random, rng

DTYPES = [np.float32, np.float64]

# (shape, kernel_size, stride, padding, dilation, ceil_mode). Widths are wide enough to reach
# the vectorized interior of every ISA and odd enough to leave edges on both sides.
MAX_CASES = [
    ((2, 3, 8, 8), 2, 2, 0, 1, False),
    ((2, 2, 9, 71), 2, 2, 0, 1, False),                # H, W not divisible by the stride
    ((1, 2, 9, 71), 2, 2, 0, 1, True),                 # ceil_mode adds a clipped window
    ((1, 2, 7, 37), 2, 2, 1, 1, True),                 # ceil_mode window would start in the padding
    ((2, 2, 11, 67), 3, 2, 0, 1, False),
    ((1, 2, 11, 67), 3, 2, 1, 1, False),
    ((1, 2, 10, 66), 3, 2, 1, 1, True),
    ((1, 3, 7, 45), 3, 1, 1, 1, False),                # k3s1
    ((1, 2, 7, 41), 3, 1, 0, 1, True),
    ((2, 2, 7, 7), 7, 1, 0, 1, False),                 # kernel == input size
    ((1, 2, 6, 50), (2, 3), (1, 2), (1, 1), 1, False), # rectangular, stride != kernel
    ((1, 2, 13, 40), 2, 3, 0, 1, False),               # stride > kernel
    ((1, 2, 13, 40), 3, 3, 1, 1, True),
    ((1, 2, 9, 53), 5, 2, 2, 1, True),                 # padding = half the kernel
    ((1, 2, 8, 35), 4, 4, 2, 1, False),
    ((1, 2, 12, 50), 3, 2, 1, 2, False),               # dilation
    ((1, 2, 12, 50), 3, 1, 1, 3, True),
    ((1, 2, 12, 49), 2, 2, 1, 2, True),
    ((1, 2, 12, 49), (2, 3), (2, 1), (1, 0), (3, 2), False),
    ((1, 1, 1, 1), 1, 1, 0, 1, False),
    ((1, 2, 5, 40), (1, 5), (1, 2), (0, 2), 1, False),
    ((1, 2, 40, 5), (5, 1), (2, 1), (2, 0), 1, True),
    ((3, 1, 6, 6), 1, 2, 0, 1, True),
]
AVG_CASES = [c for c in MAX_CASES if c[4] == 1]
AVG_VARIANTS = [(True, None), (False, None), (True, 3), (False, 5)]  # count_include_pad, divisor


@pytest.fixture(autouse=True, scope="module")
def torch_one_thread():
    """Tiny shapes: torch's thread team costs more than it saves (and waits on a busy core)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def as_pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def depth_of(kernel):
    kh, kw = as_pair(kernel)
    return kh * kw


def nhwc(a):
    """The same values in NHWC memory, viewed as NCHW (torch's channels_last)."""
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


def assert_format(actual, expected, what):
    """actual in the memory format of torch's result `expected` (NumPy views of the same dtype):
    the same strides along every dimension of size > 1."""
    same = all(n == 1 or a == b for n, a, b in zip(actual.shape, actual.strides, expected.strides))
    assert same, f"{what}: strides {actual.strides}, torch's {expected.strides} (shape {actual.shape})"


# torch's results, its backward ops called directly: autograd would lay a leaf's .grad out like
# the leaf, not in the memory format the op chose. x.copy(order="K") keeps x's memory format.
def torch_max(x, g, kernel, stride, padding, dilation, ceil_mode):
    xt = torch.from_numpy(x.copy(order="K"))
    out, idx = F.max_pool2d(xt, kernel, stride, padding, dilation, ceil_mode, return_indices=True)
    grad = torch.ops.aten.max_pool2d_with_indices_backward(
        torch.from_numpy(g), xt, as_pair(kernel), as_pair(stride), as_pair(padding), as_pair(dilation),
        ceil_mode, idx)
    return out.numpy(), idx.numpy(), grad.numpy()


def torch_avg(x, g, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override):
    xt = torch.from_numpy(x.copy(order="K"))
    out = F.avg_pool2d(xt, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)
    grad = torch.ops.aten.avg_pool2d_backward(torch.from_numpy(g), xt, as_pair(kernel), as_pair(stride),
                                              as_pair(padding), ceil_mode, count_include_pad, divisor_override)
    return out.numpy(), grad.numpy()


def check_max(x, kernel, stride, padding, dilation, ceil_mode, use_torch=True, g_layout=None):
    """convforge against the reference and torch; g_layout(array) lays grad_output out (by
    default in the input's memory format, as autograd hands it over)."""
    args = (kernel, stride, padding, dilation, ceil_mode)
    out, idx = convforge.max_pool2d(x, *args, return_indices=True)
    ref_out, ref_idx = reference.max_pool2d(x, *args, return_indices=True)
    assert out.dtype == x.dtype and idx.dtype == np.int64
    np.testing.assert_array_equal(out, ref_out.astype(x.dtype))  # a selection: exact
    np.testing.assert_array_equal(idx, ref_idx)
    only = convforge.max_pool2d(x, *args)
    assert np.array_equal(only, out, equal_nan=True) and only.strides == out.strides
    g = random(out.shape, x.dtype, "grad", x.shape)
    g = (g_layout or (nhwc if channels_last(x) else np.ascontiguousarray))(g)
    grad = convforge.max_pool2d_backward(g, x, idx, *args)
    ref_grad = reference.max_pool2d_backward(g, x, idx, *args)
    magnitude = reference.max_pool2d_backward(np.abs(g), x, idx, *args)
    assert grad.dtype == x.dtype and grad.shape == x.shape
    assert_close(grad, ref_grad, magnitude, depth_of(kernel), what="grad_input")
    if use_torch:
        t_out, t_idx, t_grad = torch_max(x, g, *args)
        np.testing.assert_array_equal(out, t_out)
        np.testing.assert_array_equal(idx, t_idx)  # torch's indices, bit for bit
        assert_close(t_grad, ref_grad, magnitude, depth_of(kernel), what="torch grad_input")
        for name, a, t in (("output", out, t_out), ("indices", idx, t_idx), ("grad_input", grad, t_grad)):
            assert_format(a, t, name)


def check_avg(x, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override, use_torch=True,
              g_layout=None):
    args = (kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)
    out = convforge.avg_pool2d(x, *args)
    ref_out = reference.avg_pool2d(x, *args)
    assert out.dtype == x.dtype
    depth = depth_of(kernel) + 1  # the sum, then the division
    assert_close(out, ref_out, reference.avg_pool2d(np.abs(x), *args), depth, what="output")
    g = random(out.shape, x.dtype, "grad", x.shape)
    g = (g_layout or (nhwc if channels_last(x) else np.ascontiguousarray))(g)
    grad = convforge.avg_pool2d_backward(g, x, *args)
    ref_grad = reference.avg_pool2d_backward(g, x, *args)
    magnitude = reference.avg_pool2d_backward(np.abs(g), x, *args)
    assert grad.dtype == x.dtype and grad.shape == x.shape
    assert_close(grad, ref_grad, magnitude, depth, what="grad_input")
    if use_torch:
        t_out, t_grad = torch_avg(x, g, *args)
        assert_close(t_out, ref_out, reference.avg_pool2d(np.abs(x), *args), depth, what="torch output")
        assert_close(t_grad, ref_grad, magnitude, depth, what="torch grad_input")
        # The same loops in the same order as torch's, on either layout: the same bits.
        np.testing.assert_array_equal(out, t_out)
        np.testing.assert_array_equal(grad, t_grad)
        assert_format(out, t_out, "output")
        assert_format(grad, t_grad, "grad_input")


# ----------------------------------------------------------------------------------------------
# The reference against central finite differences


def finite_difference_check(f, backward, x, g, step):
    """d/dx sum(g * f(x)) by central differences against backward(g). The rounding error of a
    difference quotient is about eps * |sum(g * f)| / step, which sets the tolerance."""
    numeric = np.empty_like(x)
    flat = numeric.reshape(-1)
    scale = np.abs(g).sum() * (np.abs(x).max() + 1.0)
    for i in range(x.size):
        plus, minus = x.copy(), x.copy()
        plus.reshape(-1)[i] += step
        minus.reshape(-1)[i] -= step
        flat[i] = ((g * f(plus)).sum() - (g * f(minus)).sum()) / (2 * step)
    tolerance = 16 * np.finfo(np.float64).eps * scale / step
    np.testing.assert_allclose(backward(g), numeric, rtol=0, atol=tolerance)


@pytest.mark.parametrize("case", [0, 3, 6, 9, 10, 12, 13, 16, 18, 22], ids=lambda i: str(MAX_CASES[i][1:]))
def test_reference_max_finite_differences(case):
    shape, kernel, stride, padding, dilation, ceil_mode = MAX_CASES[case]
    shape = (1, 1, min(shape[2], 8), min(shape[3], 11))
    args = (kernel, stride, padding, dilation, ceil_mode)
    # Distinct values far apart compared with the step: no window changes its argmax.
    x = rng("fd-max", shape).permutation(np.prod(shape)).reshape(shape) * 0.01
    out = reference.max_pool2d(x, *args)
    g = random(out.shape, np.float64, "fd-g")
    _, idx = reference.max_pool2d(x, *args, return_indices=True)
    finite_difference_check(lambda v: reference.max_pool2d(v, *args),
                            lambda g: reference.max_pool2d_backward(g, x, idx, *args), x, g, 1e-4)


@pytest.mark.parametrize("variant", AVG_VARIANTS)
@pytest.mark.parametrize("case", [0, 3, 6, 9, 10, 12, 13, 22], ids=lambda i: str(MAX_CASES[i][1:]))
def test_reference_avg_finite_differences(case, variant):
    shape, kernel, stride, padding, _, ceil_mode = MAX_CASES[case]
    shape = (1, 1, min(shape[2], 8), min(shape[3], 11))
    args = (kernel, stride, padding, ceil_mode, *variant)
    x = random(shape, np.float64, "fd-avg")
    g = random(reference.avg_pool2d(x, *args).shape, np.float64, "fd-g")
    finite_difference_check(lambda v: reference.avg_pool2d(v, *args),
                            lambda g: reference.avg_pool2d_backward(g, x, *args), x, g, 1e-3)


# ----------------------------------------------------------------------------------------------
# The fast path against the reference and torch


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", MAX_CASES, ids=str)
def test_max_pool2d(case, dtype, isa):
    shape, *args = case
    check_max(random(shape, dtype, "max"), *args)


@pytest.mark.parametrize("variant", AVG_VARIANTS, ids=str)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", AVG_CASES, ids=str)
def test_avg_pool2d(case, dtype, variant, isa):
    shape, kernel, stride, padding, _, ceil_mode = case
    check_avg(random(shape, dtype, "avg"), kernel, stride, padding, ceil_mode, *variant)


SMALL_CASES = [
    ((1, 2, 6, 7), 2, 2, 0, 1, False),
    ((2, 1, 7, 9), 3, 2, 1, 1, True),
    ((1, 2, 5, 6), 3, 1, 1, 2, False),
    ((1, 1, 5, 5), 2, 2, 1, 1, True),
]


@pytest.mark.parametrize("case", SMALL_CASES, ids=str)
def test_backends(case, backend):
    shape, kernel, stride, padding, dilation, ceil_mode = case
    x = random(shape, np.float32, "backend")
    check_max(x, kernel, stride, padding, dilation, ceil_mode, use_torch=False)
    if dilation == 1:
        for variant in AVG_VARIANTS:
            check_avg(x, kernel, stride, padding, ceil_mode, *variant, use_torch=False)


@pytest.mark.parametrize("dtype", DTYPES)
def test_layer_shape_k2s2_and_k3s2(dtype, isa):
    x = random((2, 3, 28, 112), dtype, "layer")
    for kernel in (2, 3):
        check_max(x, kernel, 2, 0, 1, False)
        check_avg(x, kernel, 2, 0, False, True, None)


@pytest.mark.parametrize("dtype", DTYPES)
def test_narrow_planes(dtype, isa):
    # LeNet's pools, then overlapping and padded windows: planes whose interior is narrower than a
    # vector block of every ISA, so the forward runs its per-output path inside the input and the
    # backward scatters in output order, which is torch's: the same bits.
    for shape, kernel, stride, padding in (((4, 6, 28, 28), 2, 2, 0), ((4, 16, 10, 10), 2, 2, 0),
                                           ((3, 2, 13, 11), 3, 2, 1), ((2, 3, 9, 9), 3, 1, 1)):
        x = random(shape, dtype, "narrow")
        check_max(x, kernel, stride, padding, 1, False)
        check_avg(x, kernel, stride, padding, False, True, None)
        out, idx = convforge.max_pool2d(x, kernel, stride, padding, return_indices=True)
        g = random(out.shape, dtype, "narrow grad")
        grad = convforge.max_pool2d_backward(g, x, idx, kernel, stride, padding)
        np.testing.assert_array_equal(grad, torch_max(x, g, kernel, stride, padding, 1, False)[2])


def test_unbatched():
    x = random((3, 9, 35), np.float32, "unbatched")
    out, idx = convforge.max_pool2d(x, 3, 2, 1, return_indices=True)
    t_out, t_idx = F.max_pool2d(torch.from_numpy(x), 3, 2, 1, return_indices=True)
    assert out.shape == (3, 5, 18)
    np.testing.assert_array_equal(out, t_out.numpy())
    np.testing.assert_array_equal(idx, t_idx.numpy())
    g = random(out.shape, np.float32, "g")
    grad = convforge.max_pool2d_backward(g, x, idx, 3, 2, 1)
    np.testing.assert_array_equal(grad[None], convforge.max_pool2d_backward(g[None], x[None], idx[None], 3, 2, 1))
    avg = convforge.avg_pool2d(x, 3, 2, 1)
    np.testing.assert_array_equal(avg[None], convforge.avg_pool2d(x[None], 3, 2, 1))
    grad = convforge.avg_pool2d_backward(avg, x, 3, 2, 1)
    np.testing.assert_array_equal(grad[None], convforge.avg_pool2d_backward(avg[None], x[None], 3, 2, 1))


@pytest.mark.parametrize("dtype", DTYPES)
def test_non_contiguous(dtype):
    base = random((2, 3, 20, 90), dtype, "strided")
    for x in (base[:, :, ::2, 1::2], base.transpose(0, 1, 3, 2), base[:, ::2]):
        assert not x.flags.c_contiguous
        check_max(x, 3, 2, 1, 1, False)
        check_avg(x, 2, 2, 0, True, True, None)


@pytest.mark.parametrize("dtype", DTYPES)
def test_nan_propagates_and_last_nan_wins(dtype, isa):
    x = random((2, 2, 9, 70), dtype, "nan")
    mask = rng("nan-mask").random(x.shape) < 0.08
    x[mask] = np.nan
    for args in [(2, 2, 0, 1, False), (3, 2, 1, 1, True), (3, 1, 1, 2, False)]:
        check_max(x, *args)
        out = convforge.max_pool2d(x, *args)
        assert np.isnan(out).any() and not np.isnan(out).all()
    check_avg(x, 3, 2, 1, False, True, None)


@pytest.mark.parametrize("dtype", DTYPES)
def test_ties_first_maximum_wins(dtype, isa):
    x = rng("ties").integers(0, 3, size=(2, 2, 9, 70)).astype(dtype)
    for args in [(2, 2, 0, 1, False), (3, 2, 1, 1, True), (3, 1, 0, 1, False), (2, 2, 1, 2, True)]:
        check_max(x, *args)


@pytest.mark.parametrize("dtype", DTYPES)
def test_infinities(dtype, isa):
    x = random((1, 2, 9, 70), dtype, "inf")
    x[rng("inf-mask").random(x.shape) < 0.5] = -np.inf
    x[0, 0, :4] = -np.inf  # whole windows of -inf, some with padding
    x[0, 1, 3, 5] = np.inf
    for args in [(2, 2, 0, 1, False), (3, 2, 1, 1, True), (2, 2, 1, 1, True)]:
        check_max(x, *args)
    x = np.where(np.isinf(x), np.array(1e30, dtype), x)  # avg: large but finite values
    check_avg(x, 3, 2, 1, True, False, None)


def test_threads_give_the_same_bits(threads):
    x = random((4, 8, 30, 70), np.float32, "threads")
    g3 = random((4, 8, 15, 35), np.float32, "g")
    results = []
    for n in (1, 2):
        threads(n)
        out, idx = convforge.max_pool2d(x, 3, 2, 1, return_indices=True)
        results.append((out, idx, convforge.max_pool2d_backward(g3, x, idx, 3, 2, 1),
                        convforge.avg_pool2d(x, 3, 2, 1), convforge.avg_pool2d_backward(g3, x, 3, 2, 1)))
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_empty_batch():
    x = np.zeros((0, 3, 8, 8), np.float32)
    out, idx = convforge.max_pool2d(x, 2, return_indices=True)
    assert out.shape == idx.shape == (0, 3, 4, 4)
    assert convforge.max_pool2d_backward(out, x, idx, 2).shape == x.shape
    assert convforge.avg_pool2d_backward(convforge.avg_pool2d(x, 2), x, 2).shape == x.shape


# ----------------------------------------------------------------------------------------------
# channels_last (NHWC): the kernels read and write NHWC memory in place, vectors along the
# channels. Channel counts around every ISA's vector widths (4, 8, 16 lanes; groups of 4
# vectors): fewer than a vector, whole vectors, groups plus a shifted last vector.

NHWC_CHANNELS = [19, 3, 37, 70, 8, 1, 16, 33, 64, 5, 24]


def with_channels(shape, i):
    n, _, h, w = shape
    return (n, NHWC_CHANNELS[i % len(NHWC_CHANNELS)], h, w)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("i", range(len(MAX_CASES)), ids=lambda i: str(MAX_CASES[i]))
def test_max_pool2d_nhwc(i, dtype, isa):
    shape, *args = MAX_CASES[i]
    x = nhwc(random(with_channels(shape, i), dtype, "max-nhwc"))
    assert channels_last(x) or x.flags.c_contiguous  # one channel or one pixel: NCHW memory too
    check_max(x, *args)


@pytest.mark.parametrize("variant", AVG_VARIANTS, ids=str)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("i", range(len(AVG_CASES)), ids=lambda i: str(AVG_CASES[i]))
def test_avg_pool2d_nhwc(i, dtype, variant, isa):
    shape, kernel, stride, padding, _, ceil_mode = AVG_CASES[i]
    x = nhwc(random(with_channels(shape, i + 1), dtype, "avg-nhwc"))
    check_avg(x, kernel, stride, padding, ceil_mode, *variant)


@pytest.mark.parametrize("dtype", DTYPES)
def test_layer_shape_nhwc(dtype, isa):
    x = nhwc(random((2, 64, 28, 30), dtype, "layer-nhwc"))
    for kernel, padding in ((2, 0), (3, 1)):
        check_max(x, kernel, 2, padding, 1, False)
        check_avg(x, kernel, 2, padding, False, True, None)


@pytest.mark.parametrize("h,w", [(181, 181), (182, 181)])  # plane offsets up to 32760 and 32941
def test_max_backward_index_widths_nhwc(h, w, isa):
    """Max backward compares the indices of overlapping windows as int16 copies while every
    offset of the plane fits in 15 bits, else as int32 copies (AVX-512): both sides of the limit."""
    x = nhwc(random((1, 17, h, w), np.float32, "plane-nhwc"))
    check_max(x, 3, 2, 1, 1, True)
    out, idx = convforge.max_pool2d(x, 3, 2, 1, ceil_mode=True, return_indices=True)
    idx[0, 3, 5, 7] = h * w  # just outside the plane: never equal to a saturated int16 copy's value
    with pytest.raises(ValueError, match="indices"):
        convforge.max_pool2d_backward(out, x, idx, 3, 2, 1, ceil_mode=True)


@pytest.mark.parametrize("dtype", DTYPES)
def test_strided_nhwc_views(dtype):
    """channels_last views that are not dense (torch's rule still says channels_last) are copied
    once into dense NHWC; the outputs are channels_last, as torch's."""
    base = random((2, 21, 45, 40), dtype, "strided-nhwc")  # N, H, W, C
    views = [base[:, 1::2, ::3].transpose(0, 3, 1, 2),     # rows and columns skipped
             base[..., 3:37].transpose(0, 3, 1, 2),        # a slice of the channels
             base[..., ::2].transpose(0, 3, 1, 2)]         # every other channel
    for x in views:
        assert channels_last(x) and not x.flags.c_contiguous
        check_max(x, 3, 2, 1, 1, True)
        check_avg(x, 2, 2, 1, False, False, None)


@pytest.mark.parametrize("dtype", DTYPES)
def test_mixed_layouts(dtype):
    """grad_output and indices in the other layout than the input are converted (the memory
    format of grad_input follows the input's, as in torch)."""
    x = nhwc(random((2, 20, 9, 31), dtype, "mixed"))
    for g_layout in (np.ascontiguousarray, nhwc):
        check_max(x, 3, 2, 1, 1, False, g_layout=g_layout)
        check_max(np.ascontiguousarray(x), 2, 2, 0, 1, True, g_layout=g_layout)
        check_avg(x, 3, 2, 1, True, True, None, g_layout=g_layout)
        check_avg(np.ascontiguousarray(x), 3, 1, 1, False, False, 2, g_layout=g_layout)
    out, idx = convforge.max_pool2d(x, 3, 2, 1, return_indices=True)
    g = random(out.shape, dtype, "g")
    expected = convforge.max_pool2d_backward(nhwc(g), x, idx, 3, 2, 1)
    for grad_output, indices in ((g, idx), (nhwc(g), np.ascontiguousarray(idx)), (g, np.ascontiguousarray(idx))):
        got = convforge.max_pool2d_backward(grad_output, x, indices, 3, 2, 1)
        np.testing.assert_array_equal(got, expected)
        assert got.strides == expected.strides


@pytest.mark.parametrize("dtype", DTYPES)
def test_nan_inf_ties_nhwc(dtype, isa):
    x = random((2, 37, 9, 30), dtype, "nan-nhwc")
    x[rng("nan-nhwc-mask").random(x.shape) < 0.08] = np.nan
    x[rng("inf-nhwc-mask").random(x.shape) < 0.1] = -np.inf
    x[0, 3] = -np.inf  # whole windows of -inf, with padding
    x[1, 5, 2, 3] = np.inf
    x = nhwc(x)
    for args in [(2, 2, 0, 1, False), (3, 2, 1, 1, True), (3, 1, 1, 2, False)]:
        check_max(x, *args)
        out = convforge.max_pool2d(x, *args)
        assert np.isnan(out).any() and not np.isnan(out).all()
    ties = nhwc(rng("ties-nhwc").integers(0, 3, size=(2, 21, 9, 30)).astype(dtype))
    for args in [(2, 2, 0, 1, False), (3, 2, 1, 1, True), (2, 2, 1, 2, True)]:
        check_max(ties, *args)
    finite = nhwc(np.where(np.isinf(x), np.array(1e30, dtype), x))
    check_avg(finite, 3, 2, 1, True, False, None)


def test_threads_give_the_same_bits_nhwc(threads):
    x = nhwc(random((4, 40, 30, 35), np.float32, "threads-nhwc"))
    g = nhwc(random((4, 40, 15, 18), np.float32, "g"))
    results = []
    for n in (1, 2):
        threads(n)
        out, idx = convforge.max_pool2d(x, 3, 2, 1, return_indices=True)
        results.append((out, idx, convforge.max_pool2d_backward(g, x, idx, 3, 2, 1),
                        convforge.avg_pool2d(x, 3, 2, 1), convforge.avg_pool2d_backward(g, x, 3, 2, 1)))
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("case", SMALL_CASES, ids=str)
def test_backends_nhwc(case, backend):
    """On every backend (the CUDA ones compute on NCHW copies) the outputs follow the input's
    memory format."""
    shape, kernel, stride, padding, dilation, ceil_mode = case
    x = nhwc(random(shape, np.float32, "backend-nhwc"))
    check_max(x, kernel, stride, padding, dilation, ceil_mode, use_torch=False)
    out, idx = convforge.max_pool2d(x, kernel, stride, padding, dilation, ceil_mode, return_indices=True)
    assert channels_last(out) == channels_last(idx) == channels_last(x)
    if dilation == 1:
        check_avg(x, kernel, stride, padding, ceil_mode, True, None, use_torch=False)
        assert channels_last(convforge.avg_pool2d(x, kernel, stride, padding, ceil_mode)) == channels_last(x)


# ----------------------------------------------------------------------------------------------
# Max pooling backward honours whatever in-plane indices it is given


LAYOUTS = {"nchw": np.ascontiguousarray, "nhwc": nhwc}


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_max_backward_arbitrary_indices(dtype, layout, isa):
    arrange = LAYOUTS[layout]
    x = arrange(random((2, 3 if layout == "nchw" else 19, 10, 40), dtype, "arbitrary"))
    out, idx = convforge.max_pool2d(x, 2, 2, return_indices=True)
    g = arrange(random(out.shape, dtype, "g"))
    idx = arrange(idx)
    idx[0, 1, 2, 3] = 0            # outside its window, inside the plane
    idx[1, 2] = 7                  # a whole plane pointing at one position
    got = convforge.max_pool2d_backward(g, x, idx, 2, 2)
    assert got.strides == x.strides
    expected = reference.max_pool2d_backward(g, x, idx, 2, 2)
    magnitude = reference.max_pool2d_backward(np.abs(g), x, idx, 2, 2)
    assert_close(got, expected, magnitude, depth=idx[0, 0].size)
    # torch's kernel scatters the same way
    t = torch.ops.aten.max_pool2d_with_indices_backward(
        torch.from_numpy(g), torch.from_numpy(x), [2, 2], [2, 2], [0, 0], [1, 1], False, torch.from_numpy(idx))
    assert_close(t.numpy(), expected, magnitude, depth=idx[0, 0].size)
    np.testing.assert_array_equal(got, t.numpy())  # the same scatter order as torch's: the same bits
    # One image with an index outside its window (redone as a scatter), one gathered.
    idx[1] = convforge.max_pool2d(x, 2, 2, return_indices=True)[1][1]
    t = torch.ops.aten.max_pool2d_with_indices_backward(
        torch.from_numpy(g), torch.from_numpy(x), [2, 2], [2, 2], [0, 0], [1, 1], False, torch.from_numpy(idx))
    np.testing.assert_array_equal(convforge.max_pool2d_backward(g, x, idx, 2, 2), t.numpy())


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("kernel", [2, 3])
@pytest.mark.parametrize("bad", [-1, 400, 2**31, -(2**40), "2**32 + own"])
def test_max_backward_rejects_indices_outside_the_plane(bad, kernel, layout, isa):
    x = LAYOUTS[layout](random((2, 3 if layout == "nchw" else 21, 10, 40), np.float32, "outside"))
    out, idx = convforge.max_pool2d(x, kernel, 2, return_indices=True)
    idx[1, 1, 3, 4] = idx[1, 1, 3, 4] + 2**32 if bad == "2**32 + own" else bad  # no 32-bit aliasing
    with pytest.raises(ValueError, match="indices"):
        convforge.max_pool2d_backward(out, x, idx, kernel, 2)


# ----------------------------------------------------------------------------------------------
# Bad input: a clear error naming the argument


X = np.zeros((1, 2, 8, 8), np.float32)
OUT, IDX = convforge.max_pool2d(X, 2, return_indices=True)

BAD_CALLS = [
    (lambda: convforge.max_pool2d(X, 3, padding=2), ValueError, "padding"),
    (lambda: convforge.max_pool2d(X, (2, 4), padding=(1, 3)), ValueError, "padding"),
    (lambda: convforge.max_pool2d(X, 2, padding=-1), ValueError, "padding"),
    (lambda: convforge.avg_pool2d(X, 2, padding=2), ValueError, "padding"),
    (lambda: convforge.max_pool2d(X, 0), ValueError, "kernel_size"),
    (lambda: convforge.max_pool2d(X, (2, -1)), ValueError, "kernel_size"),
    (lambda: convforge.avg_pool2d(X, 0), ValueError, "kernel_size"),
    (lambda: convforge.max_pool2d(X, 2, stride=0), ValueError, "stride"),
    (lambda: convforge.avg_pool2d(X, 2, stride=(1, -2)), ValueError, "stride"),
    (lambda: convforge.max_pool2d(X, 2, dilation=0), ValueError, "dilation"),
    (lambda: convforge.max_pool2d(X, 9), ValueError, "kernel_size"),
    (lambda: convforge.max_pool2d(X, 2.0), TypeError, "kernel_size"),
    (lambda: convforge.max_pool2d(X[0, 0], 2), ValueError, "input"),
    (lambda: convforge.max_pool2d(X[None], 2), ValueError, "input"),
    (lambda: convforge.avg_pool2d(X[0, 0], 2), ValueError, "input"),
    (lambda: convforge.max_pool2d(X.astype(np.int32), 2), TypeError, "input"),
    (lambda: convforge.avg_pool2d(X.astype(np.float16), 2), TypeError, "input"),
    (lambda: convforge.max_pool2d(X.tolist(), 2), TypeError, "input"),
    (lambda: convforge.avg_pool2d(X, 2, divisor_override=0), ValueError, "divisor_override"),
    (lambda: convforge.avg_pool2d(X, 2, divisor_override=-3), ValueError, "divisor_override"),
    (lambda: convforge.avg_pool2d_backward(OUT, X, 2, divisor_override=0), ValueError, "divisor_override"),
    (lambda: convforge.max_pool2d_backward(OUT, X, IDX.astype(np.int32), 2), TypeError, "indices"),
    (lambda: convforge.max_pool2d_backward(OUT, X, IDX.astype(np.float32), 2), TypeError, "indices"),
    (lambda: convforge.max_pool2d_backward(OUT, X, IDX[:, :, :3], 2), ValueError, "indices"),
    (lambda: convforge.max_pool2d_backward(OUT[:, :, :3], X, IDX, 2), ValueError, "grad_output"),
    (lambda: convforge.max_pool2d_backward(OUT, X, IDX, 3), ValueError, "grad_output"),
    (lambda: convforge.max_pool2d_backward(OUT.astype(np.float64), X, IDX, 2), TypeError, "grad_output"),
    (lambda: convforge.avg_pool2d_backward(OUT[:, :1], X, 2), ValueError, "grad_output"),
    (lambda: convforge.avg_pool2d_backward(OUT.astype(np.float64), X, 2), TypeError, "grad_output"),
    (lambda: convforge.avg_pool2d_backward(OUT, X.astype(np.int64), 2), TypeError, "input"),
]


@pytest.mark.parametrize("call,error,name", BAD_CALLS, ids=range(len(BAD_CALLS)))
def test_bad_input(call, error, name):
    with pytest.raises(error, match=name):
        call()


# The binding on its own (convforge._C): an op's arrays share one layout, decided from all of
# them; an array in the other layout (or dense in neither) is named.
XN = nhwc(random((2, 20, 8, 9), np.float32, "bad-nhwc"))
OUTN, IDXN = convforge.max_pool2d(XN, 2, return_indices=True)
K2 = ((2, 2), (2, 2), (0, 0))


def nhwc_empty(shape, dtype=np.float32):
    return np.empty((shape[0], shape[2], shape[3], shape[1]), dtype).transpose(0, 3, 1, 2)


NCHW_OUT, NCHW_IDX = np.empty(OUTN.shape, np.float32), np.empty(OUTN.shape, np.int64)
LAYOUT_BAD_CALLS = [
    (lambda: _C.max_pool2d_forward(XN, NCHW_OUT, None, *K2, (1, 1), False), "output"),
    (lambda: _C.max_pool2d_forward(XN, nhwc_empty(OUTN.shape), NCHW_IDX, *K2, (1, 1), False), "indices"),
    (lambda: _C.max_pool2d_forward(np.ascontiguousarray(XN), nhwc_empty(OUTN.shape), None, *K2, (1, 1), False),
     "input"),
    (lambda: _C.max_pool2d_backward(np.ascontiguousarray(OUTN), IDXN, nhwc_empty(XN.shape), *K2, (1, 1), False),
     "grad_output"),
    (lambda: _C.max_pool2d_backward(OUTN, np.ascontiguousarray(IDXN), nhwc_empty(XN.shape), *K2, (1, 1), False),
     "indices"),
    (lambda: _C.max_pool2d_backward(OUTN, IDXN, np.empty(XN.shape, np.float32), *K2, (1, 1), False), "grad_input"),
    (lambda: _C.avg_pool2d_forward(XN, NCHW_OUT, *K2, False, True, None), "output"),
    (lambda: _C.avg_pool2d_forward(np.ascontiguousarray(XN), nhwc_empty(OUTN.shape), *K2, False, True, None),
     "input"),
    (lambda: _C.avg_pool2d_backward(np.ascontiguousarray(OUTN), nhwc_empty(XN.shape), *K2, False, True, None),
     "grad_output"),
    (lambda: _C.avg_pool2d_backward(OUTN, np.empty(XN.shape, np.float32), *K2, False, True, None), "grad_input"),
    # channels_last by torch's rule, but not dense: the functional API copies it, the binding refuses
    (lambda: _C.avg_pool2d_forward(nhwc(random((2, 20, 8, 18), np.float32))[..., ::2],
                                   nhwc_empty(OUTN.shape), *K2, False, True, None), "input"),
]


@pytest.mark.parametrize("call,name", LAYOUT_BAD_CALLS, ids=range(len(LAYOUT_BAD_CALLS)))
def test_binding_rejects_mixed_layouts(call, name):
    with pytest.raises(ValueError, match=f"^{name}: expected a (dense channels_last|C-contiguous)"):
        call()


@pytest.mark.skipif("cuda-emulated" not in convforge.info()["backends"], reason="built without CUDA emulation")
def test_cuda_backends_reject_channels_last():
    """The CUDA kernels read NCHW: NHWC arrays handed to the binding are refused, while the
    functional API computes on NCHW copies (test_backends_nhwc)."""
    with convforge.host_backend("cuda-emulated"):
        calls = [lambda: _C.max_pool2d_forward(XN, nhwc_empty(OUTN.shape), nhwc_empty(OUTN.shape, np.int64),
                                               *K2, (1, 1), False),
                 lambda: _C.max_pool2d_backward(OUTN, IDXN, nhwc_empty(XN.shape), *K2, (1, 1), False),
                 lambda: _C.avg_pool2d_forward(XN, nhwc_empty(OUTN.shape), *K2, False, True, None),
                 lambda: _C.avg_pool2d_backward(OUTN, nhwc_empty(XN.shape), *K2, False, True, None)]
        for call in calls:
            with pytest.raises(ValueError, match="'cuda-emulated' backend reads C-contiguous"):
                call()
        out, idx = convforge.max_pool2d(XN, 2, return_indices=True)
    np.testing.assert_array_equal(out, OUTN)
    np.testing.assert_array_equal(idx, IDXN)
    assert out.strides == OUTN.strides and idx.strides == IDXN.strides


REFERENCE_BAD_CALLS = [
    (lambda: reference.max_pool2d(X, 3, padding=2), ValueError, "padding"),
    (lambda: reference.avg_pool2d(X, 0), ValueError, "kernel_size"),
    (lambda: reference.max_pool2d(X, 2, stride=0), ValueError, "stride"),
    (lambda: reference.max_pool2d(X, 2, dilation=0), ValueError, "dilation"),
    (lambda: reference.max_pool2d(X, 9), ValueError, "kernel_size"),
    (lambda: reference.avg_pool2d(X, 2, divisor_override=0), ValueError, "divisor_override"),
    (lambda: reference.max_pool2d_backward(OUT, X, IDX + 64, 2), ValueError, "indices"),
    (lambda: reference.max_pool2d_backward(OUT, X, IDX.astype(np.int32), 2), TypeError, "indices"),
    (lambda: reference.avg_pool2d_backward(OUT[:, :1], X, 2), ValueError, "grad_output"),
]


@pytest.mark.parametrize("call,error,name", REFERENCE_BAD_CALLS, ids=range(len(REFERENCE_BAD_CALLS)))
def test_reference_bad_input(call, error, name):
    with pytest.raises(error, match=name):
        call()
