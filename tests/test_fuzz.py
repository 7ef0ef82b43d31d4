"""Property-based fuzzing of every op against the float64 NumPy references.

Random valid configurations (shapes, strides, padding incl. 'same', dilation, groups, ceil_mode,
count_include_pad, divisor_override, transposes, alpha/beta, dtypes, strided views, every ISA and
every host backend) must match convforge.reference within the tolerances of tests/helpers.py,
forward and backward. Random invalid configurations must raise ValueError or TypeError, nothing
else. Case counts come from the hypothesis profile (tests/conftest.py): the default "ci" profile
is bounded, `pytest tests/test_fuzz.py --hypothesis-profile=long` runs thousands per op. A failure
found here becomes an @example below its test.
"""

import contextlib

import numpy as np
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

import convforge
from convforge import _C, reference
from convforge._arrays import channels_last
from helpers import assert_close

ISAS = convforge.info()["supported_isas"]
BACKENDS = convforge.info()["backends"]
DTYPES = [np.float32, np.float64]


def scaled(fraction):
    """settings for a test that runs `fraction` of the active profile's examples."""
    return settings(max_examples=max(5, int(settings.default.max_examples * fraction)))


@contextlib.contextmanager
def running_on(isa, backend="cpu"):
    previous = _C.get_isa()
    _C.set_isa(isa)
    try:
        with convforge.host_backend(backend):
            yield
    finally:
        _C.set_isa(previous)


def values(rng, shape, dtype, kind="uniform"):
    """Test data: uniform in [-1, 1), or small integers (ties for max pooling, exact sums)."""
    if kind == "ties":
        return rng.integers(-2, 3, size=shape).astype(dtype)
    return rng.uniform(-1.0, 1.0, size=shape).astype(dtype)


def view_of(array, layout, rng):
    """The same values as `array`, laid out as asked: 'contiguous', 'strided' (every other
    element of a larger buffer along the last axis), 'reversed' (negative strides), 'fortran',
    'channels_last' (an (N)CHW view of (N)HWC memory, torch's channels_last) or
    'channels_last_strided' (the same, every other channel of a larger buffer)."""
    if layout.startswith("channels_last") and array.ndim in (3, 4):
        to_last = (0, 2, 3, 1) if array.ndim == 4 else (1, 2, 0)
        back = (0, 3, 1, 2) if array.ndim == 4 else (2, 0, 1)
        last = np.ascontiguousarray(array.transpose(to_last))
        if layout == "channels_last_strided":
            last = view_of(last, "strided", rng)
        return last.transpose(back)
    if layout == "strided":
        buffer = np.full(array.shape[:-1] + (2 * array.shape[-1] + 1,), np.nan, array.dtype)
        buffer[..., 1::2] = array
        return buffer[..., 1::2]
    if layout == "reversed":
        return np.flip(np.flip(array, -1).copy(), -1)
    if layout == "fortran":
        return np.asfortranarray(array)
    return array


def layouts_coincide(shape):
    """Whether an NCHW array of this shape is the same memory as its NHWC layout."""
    n, c, h, w = shape
    return np.empty((n, h, w, c)).transpose(0, 3, 1, 2).flags.c_contiguous


def assert_close_inf(actual, expected, magnitude, depth, what):
    """assert_close, where infinities must match exactly (same place, same sign)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    inf = np.isinf(expected)
    np.testing.assert_array_equal(np.isinf(actual), inf, err_msg=f"{what}: infinities differ")
    np.testing.assert_array_equal(actual[inf], expected[inf], err_msg=f"{what}: infinities differ")
    finite = lambda a: np.where(inf | np.isinf(magnitude), 0, a)  # noqa: E731
    assert_close(finite(actual).astype(actual.dtype), finite(expected), finite(magnitude), depth,
                 what=what)


LAYOUTS = st.sampled_from(["contiguous", "strided", "reversed", "fortran", "channels_last",
                           "channels_last_strided"])


# ----------------------------------------------------------------------------------------------
# GEMM


def gemm_operand(rng, rows, cols, dtype, layout):
    """A (rows, cols) operand in one of the layouts the BLAS-style binding accepts or must copy."""
    x = values(rng, (rows, cols), dtype)
    if layout == "row_strided" and rows > 0:  # a row stride larger than the row
        buffer = np.full((rows, cols + 3), np.nan, dtype)
        buffer[:, :cols] = x
        return buffer[:, :cols]
    if layout == "transposed":  # column-major: unit stride along the rows
        return np.ascontiguousarray(x.T).T
    if layout == "reversed_rows":
        return np.flipud(np.flipud(x).copy())
    if layout == "col_strided" and cols > 0:  # no unit stride at all
        buffer = np.full((rows, 2 * cols), np.nan, dtype)
        buffer[:, ::2] = x
        return buffer[:, ::2]
    if layout == "broadcast_rows" and rows > 0:  # zero row stride
        return np.broadcast_to(x[:1], (rows, cols))
    return x


def strideable(x):
    """Whether gemm can stride over x in place: unit stride along one axis, and the other stride
    stepping over whole rows (columns). Negative, zero and overlapping strides are rejected."""
    rows, cols = x.shape
    s0, s1 = (s // x.itemsize for s in x.strides)
    return (x.size == 0 or ((s1 == 1 or cols == 1) and (rows == 1 or s0 >= cols))
            or ((s0 == 1 or rows == 1) and (cols == 1 or s1 >= rows)))


GEMM_LAYOUTS = st.sampled_from(
    ["contiguous", "row_strided", "transposed", "reversed_rows", "col_strided", "broadcast_rows"])


@st.composite
def gemm_cases(draw):
    backend = draw(st.sampled_from(BACKENDS))
    limit = 9 if backend != "cpu" else 70
    dims = st.one_of(st.integers(0, 8), st.integers(1, limit))
    return dict(
        m=draw(dims), n=draw(dims), k=draw(dims),
        dtype=draw(st.sampled_from(DTYPES)),
        trans_a=draw(st.booleans()), trans_b=draw(st.booleans()),
        alpha=draw(st.sampled_from([1.0, 0.0, -1.0, 0.5, 3.0])),
        beta=draw(st.sampled_from([0.0, 1.0, -2.0, 0.25])),
        with_c=draw(st.booleans()), into_c=draw(st.booleans()),
        layout_a=draw(GEMM_LAYOUTS), layout_b=draw(GEMM_LAYOUTS),
        isa=draw(st.sampled_from(ISAS)), backend=backend,
        seed=draw(st.integers(0, 2**32 - 1)),
    )


def gemm_case(m, n, k, dtype=np.float32, trans_a=False, trans_b=False, alpha=1.0, beta=0.0,
              with_c=False, into_c=False, layout_a="contiguous", layout_b="contiguous",
              isa=ISAS[-1], backend="cpu", seed=0):
    return dict(locals())


@given(gemm_cases())
@example(gemm_case(4, 3, 3, layout_a="reversed_rows"))  # read outside a (negative stride)
@example(gemm_case(4, 3, 3, layout_a="broadcast_rows"))  # read outside a (zero stride)
@example(gemm_case(0, 2, 0))  # an empty out was rejected for its zero strides
@example(gemm_case(3, 4, 3, trans_b=True, layout_b="broadcast_rows"))
@scaled(1.0)
def test_gemm(case):
    rng = np.random.default_rng(case["seed"])
    m, n, k, dtype = case["m"], case["n"], case["k"], case["dtype"]
    a_shape = (k, m) if case["trans_a"] else (m, k)
    b_shape = (n, k) if case["trans_b"] else (k, n)
    a = gemm_operand(rng, *a_shape, dtype, case["layout_a"])
    b = gemm_operand(rng, *b_shape, dtype, case["layout_b"])
    c = values(rng, (m, n), dtype) if case["with_c"] else None
    alpha, beta = case["alpha"], case["beta"]
    kwargs = dict(alpha=alpha, beta=beta, trans_a=case["trans_a"], trans_b=case["trans_b"])
    expected = reference.gemm(a, b, c, **kwargs)
    magnitude = reference.gemm(np.abs(a), np.abs(b), None if c is None else np.abs(c),
                               alpha=abs(alpha), beta=abs(beta),
                               trans_a=case["trans_a"], trans_b=case["trans_b"])
    a_before, b_before = a.copy(), b.copy()
    out = c if (c is not None and case["into_c"]) else None
    if not (strideable(a) and strideable(b)):  # the caller copies such views (documented)
        with pytest.raises(ValueError, match="expected unit stride along one axis"):
            convforge.gemm(a, b, c, out=out, **kwargs)
        return
    with running_on(case["isa"], case["backend"]):
        got = convforge.gemm(a, b, c, out=out, **kwargs)
    assert got.dtype == dtype and got.shape == (m, n)
    assert out is None or got is out
    assert_close(got, expected, magnitude, depth=k + 2, what="gemm")
    np.testing.assert_array_equal(a, a_before)  # inputs are never written
    np.testing.assert_array_equal(b, b_before)


# ----------------------------------------------------------------------------------------------
# conv2d


@st.composite
def conv_cases(draw):
    backend = draw(st.sampled_from(BACKENDS))
    tiny = backend != "cpu"
    groups = draw(st.integers(1, 2 if tiny else 4))
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = draw(st.one_of(
        st.integers(0, 3), st.tuples(st.integers(0, 3), st.integers(0, 3)),
        st.sampled_from(["same", "valid"])))
    stride = (1, 1) if padding == "same" else (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    if isinstance(padding, int):
        pad_h = pad_w = padding
    elif isinstance(padding, tuple):
        pad_h, pad_w = padding
    else:
        pad_h = pad_w = 0  # 'same' needs no extra size; 'valid' needs the whole kernel
    # The smallest input the (dilated) kernel fits in, plus some.
    grow = st.integers(0, 4 if tiny else 12)
    h = max(1, dilation[0] * (kh - 1) + 1 - 2 * pad_h) + draw(grow)
    w = max(1, dilation[1] * (kw - 1) + 1 - 2 * pad_w) + draw(grow)
    if padding == "same":
        h, w = draw(st.integers(1, 8 if tiny else 16)), draw(st.integers(1, 8 if tiny else 16))
    return dict(
        n=draw(st.integers(1, 2 if tiny else 3)),
        c_in=groups * draw(st.integers(1, 3 if tiny else 5)),
        c_out=groups * draw(st.integers(1, 3 if tiny else 5)),
        h=h, w=w, kh=kh, kw=kw, groups=groups, dilation=dilation, padding=padding,
        stride=stride, bias=draw(st.booleans()), unbatched=draw(st.booleans()),
        dtype=draw(st.sampled_from(DTYPES)), layout=draw(LAYOUTS),
        mask=draw(st.tuples(st.booleans(), st.booleans(), st.booleans())),
        isa=draw(st.sampled_from(ISAS)), backend=backend, seed=draw(st.integers(0, 2**32 - 1)),
    )


def conv_arrays(case):
    rng = np.random.default_rng(case["seed"])
    dtype = case["dtype"]
    x = values(rng, (case["n"], case["c_in"], case["h"], case["w"]), dtype)
    if case["unbatched"]:
        x = x[0]
    weight = values(rng, (case["c_out"], case["c_in"] // case["groups"], case["kh"], case["kw"]), dtype)
    bias = values(rng, (case["c_out"],), dtype) if case["bias"] else None
    kwargs = dict(stride=case["stride"], padding=case["padding"], dilation=case["dilation"],
                  groups=case["groups"])
    return rng, view_of(x, case["layout"], rng), view_of(weight, case["layout"], rng), bias, kwargs


@given(conv_cases())
@scaled(1.0)
@pytest.mark.filterwarnings("ignore:Using padding=.same. with even kernel")
def test_conv2d_forward(case):
    _, x, weight, bias, kwargs = conv_arrays(case)
    expected = reference.conv2d(x, weight, bias, **kwargs)
    magnitude = reference.conv2d(np.abs(x), np.abs(weight), None if bias is None else np.abs(bias),
                                 **kwargs)
    with running_on(case["isa"], case["backend"]):
        got = convforge.conv2d(x, weight, bias, **kwargs)
    assert got.dtype == case["dtype"]
    depth = weight.shape[1] * weight.shape[2] * weight.shape[3] + 1
    assert_close(got, expected, magnitude, depth, what="conv2d")


@given(conv_cases())
@scaled(1.0)
@pytest.mark.filterwarnings("ignore:Using padding=.same. with even kernel")
def test_conv2d_backward(case):
    rng, x, weight, _, kwargs = conv_arrays(case)
    y_shape = reference.conv2d(x, weight, None, **kwargs).shape
    dy = view_of(values(rng, y_shape, case["dtype"]), case["layout"], rng)
    mask = case["mask"]
    expected = reference.conv2d_backward(dy, x, weight, output_mask=mask, **kwargs)
    magnitude = reference.conv2d_backward(np.abs(dy), np.abs(x), np.abs(weight), output_mask=mask,
                                          **kwargs)
    with running_on(case["isa"], case["backend"]):
        got = convforge.conv2d_backward(dy, x, weight, output_mask=mask, **kwargs)
    batched = dy.reshape((-1,) + dy.shape[-3:])
    per_output = batched.shape[0] * batched.shape[2] * batched.shape[3]
    depths = (weight.shape[0] // case["groups"] * weight.shape[2] * weight.shape[3], per_output,
              per_output)
    for name, want, g, e, m, d in zip(("grad_input", "grad_weight", "grad_bias"), mask, got,
                                      expected, magnitude, depths):
        if not want:
            assert g is None, name
            continue
        assert g.dtype == case["dtype"], name
        assert_close(g, e, m, d, what=name)


ALGORITHMS = list(convforge.conv2d_algorithms())


def winograd_shaped(case):
    """The same case with a 3x3 kernel, stride 1 and no dilation (what Winograd takes)."""
    pads = {"same": (1, 1), "valid": (0, 0)}.get(case["padding"], case["padding"])
    pad_h, pad_w = (pads, pads) if isinstance(pads, int) else pads
    return dict(case, kh=3, kw=3, stride=(1, 1), dilation=(1, 1),
                h=max(case["h"], 3 - 2 * pad_h), w=max(case["w"], 3 - 2 * pad_w))


@given(conv_cases().filter(lambda c: c["backend"] == "cpu").flatmap(
    lambda c: st.sampled_from([c, winograd_shaped(c)])))
@scaled(0.5)
@pytest.mark.filterwarnings("ignore:Using padding=.same. with even kernel")
def test_conv2d_every_algorithm(case):
    """Each CPU algorithm, forced, on each pass it applies to: the reference's tolerance, or for
    Winograd its contract (at most 4x the error of direct summation, with a floor of a few ulps)."""
    rng, x, weight, bias, kwargs = conv_arrays(case)
    y_shape = reference.conv2d(x, weight, None, **kwargs).shape
    dy = values(rng, y_shape, case["dtype"])
    expected = {"forward": reference.conv2d(x, weight, bias, **kwargs)}
    expected["grad_input"], expected["grad_weight"], _ = reference.conv2d_backward(dy, x, weight, **kwargs)
    magnitude = {"forward": reference.conv2d(np.abs(x), np.abs(weight), None if bias is None else np.abs(bias),
                                             **kwargs)}
    magnitude["grad_input"], magnitude["grad_weight"], _ = reference.conv2d_backward(
        np.abs(dy), np.abs(x), np.abs(weight), **kwargs)
    batched = dy.reshape((-1,) + dy.shape[-3:])
    depth = {"forward": weight.shape[1] * weight.shape[2] * weight.shape[3] + 1,
             "grad_input": weight.shape[0] // case["groups"] * weight.shape[2] * weight.shape[3],
             "grad_weight": batched.shape[0] * batched.shape[2] * batched.shape[3]}

    def run(pass_, algorithm):
        if pass_ == "forward":
            return convforge.conv2d(x, weight, bias, algorithm=algorithm, **kwargs)
        mask = (pass_ == "grad_input", pass_ == "grad_weight", False)
        return convforge.conv2d_backward(dy, x, weight, output_mask=mask, algorithm=algorithm,
                                         **kwargs)[pass_ == "grad_weight"]

    # The layout the kernels run: channels_last by torch's rule on the strides, unless the input
    # and the output are both the same memory in either layout (one channel or a 1x1 plane).
    x4 = x if x.ndim == 4 else x[None]
    nhwc = (channels_last(x4) or channels_last(weight)) and not (
        layouts_coincide(x4.shape) and layouts_coincide((x4.shape[0],) + y_shape[-3:]))
    with running_on(case["isa"]):
        for pass_ in ("forward", "grad_input", "grad_weight"):
            for algorithm in ALGORITHMS:
                try:
                    convforge.conv2d_algorithm(x.shape, weight.shape, pass_=pass_, dtype=case["dtype"],
                                               algorithm=algorithm, channels_last=nhwc, **kwargs)
                except ValueError:
                    continue  # does not apply
                got = run(pass_, algorithm)
                if algorithm != "winograd_f4x3":
                    assert_close(got, expected[pass_], magnitude[pass_], depth[pass_], what=f"{algorithm} {pass_}")
                    continue
                im2col = "nhwc_gemm_im2col" if nhwc else "gemm_im2col"
                direct = np.max(np.abs(run(pass_, im2col) - expected[pass_]), initial=0.0)
                floor = 4 * np.finfo(np.float32).eps * np.max(magnitude[pass_], initial=0.0)
                error = np.max(np.abs(got - expected[pass_]), initial=0.0)
                assert error <= 4 * max(direct, floor), (pass_, error, direct)


# ----------------------------------------------------------------------------------------------
# Invalid arguments: a valid call with one or two arguments replaced by something wrong must
# raise ValueError or TypeError (never crash, never another exception, never return).

BAD_PAIRS = [0, -1, -(2**40), (0, 1), (1, -2), (1, 2, 3), (), 1.5, (1.0, 1), "2", None, True,
             [1, None], 2**64, -(2**63) - 1]
BAD_COUNTS = [0, -1, -7, 1.5, "1", None, True, 2**64]
BAD_DTYPES = [np.int32, np.float16, np.complex64, np.bool_, np.uint8, object]
NOT_ARRAYS = [None, 3.0, "array", [[1.0, 2.0]], {"a": 1}]


def mutated(draw, valid, mutations):
    """`valid` kwargs with 1 or 2 entries replaced by a draw from their mutation strategies."""
    kwargs = dict(valid)
    names = draw(st.lists(st.sampled_from(sorted(mutations)), min_size=1, max_size=2, unique=True))
    for name in names:
        kwargs[name] = draw(mutations[name](kwargs))
    mutated.names = names
    return kwargs


def bad_array(shape, dtype, optional=False, alone=False):
    """Strategy: an array argument that is wrong in dtype, rank or type (None is fine when the
    argument is optional; the other float dtype is fine when it is the op's only float array)."""
    other_float = np.float64 if dtype == np.float32 else np.float32
    return st.one_of(
        st.sampled_from(BAD_DTYPES).map(lambda t: np.zeros(shape, t)),
        st.sampled_from([x for x in NOT_ARRAYS if not (optional and x is None)]),
        # 4-D ops also take an unbatched 3-D input
        st.integers(0, 6).filter(lambda r: r != len(shape) and not (len(shape) == 4 and r == 3))
        .map(lambda r: np.zeros((2,) * r, dtype)),
        st.nothing() if alone else st.just(np.zeros(shape, other_float)),
    )


def reshaped(shape, dtype):
    """Strategy: an array of the right rank and dtype but a wrong shape."""
    return st.lists(st.integers(0, 9), min_size=len(shape), max_size=len(shape)).filter(
        lambda s: tuple(s) != tuple(shape)).map(lambda s: np.zeros(s, dtype))


def expect_rejected(fn, kwargs):
    try:
        with np.errstate(all="ignore"):
            fn(**kwargs)
    except (ValueError, TypeError):
        return
    raise AssertionError(f"accepted invalid arguments: { {k: type(v).__name__ for k, v in kwargs.items()} }")


@st.composite
def bad_conv_calls(draw):
    dtype = draw(st.sampled_from(DTYPES))
    xs, ws = (2, 4, 6, 7), (6, 2, 3, 3)
    valid = dict(input=np.zeros(xs, dtype), weight=np.zeros(ws, dtype), bias=np.zeros(6, dtype),
                 stride=1, padding=1, dilation=1, groups=2)
    mutations = {
        "input": lambda k: st.one_of(bad_array(xs, dtype), reshaped(xs, dtype).filter(
            lambda a: a.shape[1] != 4 or a.shape[2] + 2 < 3 or a.shape[3] + 2 < 3)),
        "weight": lambda k: st.one_of(bad_array(ws, dtype), st.just(np.zeros((6, 4, 3, 3), dtype)),
                                      st.just(np.zeros((5, 2, 3, 3), dtype)),
                                      st.just(np.zeros((6, 2, 9, 3), dtype))),
        "bias": lambda k: st.one_of(bad_array((6,), dtype, optional=True), reshaped((6,), dtype)),
        "stride": lambda k: st.sampled_from(BAD_PAIRS),
        "padding": lambda k: st.sampled_from([-1, (0, -1), "full", "SAME", 1.0, (1, 2, 3), None]),
        "dilation": lambda k: st.sampled_from(BAD_PAIRS),
        "groups": lambda k: st.sampled_from(BAD_COUNTS + [3, 4, 5]),
    }
    kwargs = mutated(draw, valid, mutations)
    names = mutated.names
    if draw(st.booleans()) and kwargs["stride"] == 1:  # 'same' with a stride is rejected too
        kwargs["padding"], kwargs["stride"] = "same", 2
        names = names + ["padding"]
    return kwargs, names


@given(bad_conv_calls())
@scaled(0.75)
def test_conv2d_rejects(call):
    kwargs, names = call
    expect_rejected(convforge.conv2d, kwargs)
    if names != ["bias"]:  # the same wrong arguments, without the bias
        grad = dict(kwargs, grad_output=np.zeros((2, 6, 6, 7), np.float32))
        grad.pop("bias")
        expect_rejected(convforge.conv2d_backward, grad)


@st.composite
def bad_conv_backward_calls(draw):
    dtype = draw(st.sampled_from(DTYPES))
    valid = dict(grad_output=np.zeros((2, 6, 6, 7), dtype), input=np.zeros((2, 4, 6, 7), dtype),
                 weight=np.zeros((6, 2, 3, 3), dtype), stride=1, padding=1, dilation=1, groups=2)
    return mutated(draw, valid, {
        "grad_output": lambda k: st.one_of(bad_array((2, 6, 6, 7), dtype),
                                           reshaped((2, 6, 6, 7), dtype)),
    })


@given(bad_conv_backward_calls(), st.tuples(st.booleans(), st.booleans(), st.booleans()))
@scaled(0.25)
def test_conv2d_backward_rejects(kwargs, mask):
    assume(any(mask))
    expect_rejected(convforge.conv2d_backward, dict(kwargs, output_mask=mask))


@st.composite
def bad_pool_calls(draw):
    dtype = draw(st.sampled_from(DTYPES))
    xs = (2, 3, 7, 8)
    op = draw(st.sampled_from(["max", "avg"]))
    valid = dict(input=np.zeros(xs, dtype), kernel_size=3, stride=2, padding=1)
    if op == "max":
        valid.update(dilation=1, ceil_mode=draw(st.booleans()), return_indices=draw(st.booleans()))
    else:
        valid.update(ceil_mode=draw(st.booleans()), count_include_pad=draw(st.booleans()),
                     divisor_override=None)
    mutations = {
        "input": lambda k: st.one_of(bad_array(xs, dtype, alone=True),
                                     st.just(np.zeros((2, 3, 0, 8), dtype)),
                                     st.just(np.zeros((2, 3, 8, 0), dtype))),
        "kernel_size": lambda k: st.sampled_from(BAD_PAIRS + [(12, 3), 20]),
        "stride": lambda k: st.sampled_from([b for b in BAD_PAIRS if b not in ((), None)]),
        "padding": lambda k: st.sampled_from([-1, 2, (1, 2), (0, -1), 2**40, 1.0, "same", None]),
    }
    if op == "max":
        mutations["dilation"] = lambda k: st.sampled_from(BAD_PAIRS + [(9, 1)])
    else:
        mutations["divisor_override"] = lambda k: st.sampled_from([0, -1, 1.5, "2", True, 2**64])
    fn = convforge.max_pool2d if op == "max" else convforge.avg_pool2d
    return fn, mutated(draw, valid, mutations)


@given(bad_pool_calls())
@scaled(0.75)
def test_pool2d_rejects(call):
    fn, kwargs = call
    expect_rejected(fn, kwargs)


@st.composite
def bad_pool_backward_calls(draw):
    dtype = draw(st.sampled_from(DTYPES))
    x = np.zeros((2, 3, 7, 8), dtype)
    ys = (2, 3, 3, 4)
    op = draw(st.sampled_from(["max", "avg"]))
    valid = dict(grad_output=np.zeros(ys, dtype), input=x, kernel_size=3, stride=2, padding=1)
    mutations = {"grad_output": lambda k: st.one_of(bad_array(ys, dtype), reshaped(ys, dtype))}
    if op == "max":
        valid["indices"] = np.zeros(ys, np.int64)
        mutations["indices"] = lambda k: st.one_of(
            st.sampled_from([np.int32, np.float64, np.uint64]).map(lambda t: np.zeros(ys, t)),
            reshaped(ys, np.int64),
            # offsets outside the 7 x 8 plane: the backward would write out of bounds
            st.tuples(st.sampled_from([-1, 56, 57, 2**40, -(2**63)]),
                      st.integers(0, int(np.prod(ys)) - 1)).map(
                lambda v: np.put(idx := np.zeros(ys, np.int64), v[1], v[0]) or idx))
        fn = convforge.max_pool2d_backward
    else:
        valid.update(count_include_pad=True, divisor_override=None)
        mutations["divisor_override"] = lambda k: st.sampled_from([0, -1, 1.5, True])
        fn = convforge.avg_pool2d_backward
    return fn, mutated(draw, valid, mutations)


@given(bad_pool_backward_calls())
@example((convforge.max_pool2d_backward, dict(  # wrote far outside grad_input (segfault)
    grad_output=np.ones((1, 1, 2, 2), np.float32), input=np.zeros((1, 1, 4, 4), np.float32),
    indices=np.full((1, 1, 2, 2), 10**9, np.int64), kernel_size=2)))
@scaled(0.5)
def test_pool2d_backward_rejects(call):
    fn, kwargs = call
    expect_rejected(fn, kwargs)


@st.composite
def bad_gemm_calls(draw):
    dtype = draw(st.sampled_from(DTYPES))
    a, b, c = np.zeros((5, 4), dtype), np.zeros((4, 3), dtype), np.zeros((5, 3), dtype)
    valid = dict(a=a, b=b, c=c, alpha=1.0, beta=1.0, out=None)
    mutations = {
        "a": lambda k: st.one_of(bad_array((5, 4), dtype), st.just(np.zeros((5, 5), dtype))),
        "b": lambda k: st.one_of(bad_array((4, 3), dtype), st.just(np.zeros((3, 3), dtype))),
        "c": lambda k: st.one_of(bad_array((5, 3), dtype, optional=True), reshaped((5, 3), dtype)),
        "alpha": lambda k: st.sampled_from([None, "x", [1.0], 1j]),
        "out": lambda k: st.one_of(
            bad_array((5, 3), dtype, optional=True), reshaped((5, 3), dtype),
            st.just(np.zeros((5, 3), dtype)).map(lambda o: o.setflags(write=False) or o),
            st.just(np.zeros((3, 5), dtype).T),  # no unit stride along columns
            st.just(np.zeros((5, 6), dtype)[:, ::2]),
            st.just(np.zeros((5, 3), dtype)[::-1]),  # writes would go backwards out of bounds
            st.just(np.lib.stride_tricks.as_strided(np.zeros(8, dtype), (5, 3), (dtype().itemsize,) * 2)),
            st.just("a")),  # the output aliases an input
    }
    kwargs = mutated(draw, valid, mutations)
    if isinstance(kwargs["out"], str):
        kwargs["out"] = kwargs["a"] if draw(st.booleans()) else kwargs["b"]
        assume(isinstance(kwargs["out"], np.ndarray))
    return kwargs


@given(bad_gemm_calls())
@scaled(0.5)
def test_gemm_rejects(kwargs):
    expect_rejected(convforge.gemm, kwargs)


# ----------------------------------------------------------------------------------------------
# Pooling


@st.composite
def pool_cases(draw, op):
    backend = draw(st.sampled_from(BACKENDS))
    tiny = backend != "cpu"
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3))) if op == "max" else (1, 1)
    padding = (draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2)))
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 4), st.integers(1, 4))))
    grow = st.integers(0, 5 if tiny else 14)
    h = max(1, dilation[0] * (kh - 1) + 1 - 2 * padding[0]) + draw(grow)
    w = max(1, dilation[1] * (kw - 1) + 1 - 2 * padding[1]) + draw(grow)
    kwargs = dict(kernel_size=(kh, kw), stride=stride, padding=padding,
                  ceil_mode=draw(st.booleans()))
    if op == "max":
        kwargs["dilation"] = dilation
    else:
        kwargs["count_include_pad"] = draw(st.booleans())
        kwargs["divisor_override"] = draw(st.one_of(st.none(), st.integers(1, 30)))
    return dict(
        shape=(draw(st.integers(1, 2 if tiny else 3)), draw(st.integers(1, 3 if tiny else 6)), h, w),
        kwargs=kwargs, unbatched=draw(st.booleans()), dtype=draw(st.sampled_from(DTYPES)),
        kind=draw(st.sampled_from(["uniform", "ties", "specials"])), layout=draw(LAYOUTS),
        isa=draw(st.sampled_from(ISAS)), backend=backend, seed=draw(st.integers(0, 2**32 - 1)),
    )


def pool_input(case):
    rng = np.random.default_rng(case["seed"])
    kind = case["kind"]
    x = values(rng, case["shape"], case["dtype"], "ties" if kind == "ties" else "uniform")
    if kind == "specials":  # NaN and infinities propagate as in torch
        specials = np.array([np.nan, np.inf, -np.inf], case["dtype"])
        where = rng.random(x.shape) < 0.1
        x[where] = rng.choice(specials, size=int(where.sum()))
    if case["unbatched"]:
        x = x[0]
    return rng, view_of(x, case["layout"], rng)


@given(pool_cases("max"))
@scaled(1.0)
def test_max_pool2d(case):
    rng, x = pool_input(case)
    kwargs = case["kwargs"]
    expected, expected_idx = reference.max_pool2d(x, return_indices=True, **kwargs)
    with running_on(case["isa"], case["backend"]):
        got, idx = convforge.max_pool2d(x, return_indices=True, **kwargs)
        got_only = convforge.max_pool2d(x, **kwargs)
    assert got.dtype == case["dtype"] and idx.dtype == np.int64
    np.testing.assert_array_equal(got, expected.astype(case["dtype"]))  # max is exact
    np.testing.assert_array_equal(got_only, got)
    # A window can lie wholly in the padding (dilation > 1): its value is -inf as in torch, its
    # index is not a pixel of the plane (torch's is the first tap past the padding, the
    # reference's -1), and the backward rejects it. Compare indices elsewhere.
    empty = expected_idx < 0
    np.testing.assert_array_equal(idx[~empty], expected_idx[~empty])  # first max / NaN wins
    if empty.any():
        return
    grad_output = view_of(values(rng, got.shape, case["dtype"]), case["layout"], rng)
    expected_grad = reference.max_pool2d_backward(grad_output, x, idx, **kwargs)
    magnitude = reference.max_pool2d_backward(np.abs(grad_output), x, idx, **kwargs)
    with running_on(case["isa"], case["backend"]):
        grad = convforge.max_pool2d_backward(grad_output, x, idx, **kwargs)
    k = kwargs["kernel_size"]
    assert_close(grad, expected_grad, magnitude, k[0] * k[1], what="max_pool2d grad_input")


@given(pool_cases("avg"))
@scaled(1.0)
def test_avg_pool2d(case):
    rng, x = pool_input(case)
    kwargs = case["kwargs"]
    k = kwargs["kernel_size"]
    with np.errstate(invalid="ignore"):  # inf - inf in the references' sums
        expected = reference.avg_pool2d(x, **kwargs)
        magnitude = reference.avg_pool2d(np.abs(x), **kwargs)
    with running_on(case["isa"], case["backend"]):
        got = convforge.avg_pool2d(x, **kwargs)
    assert got.dtype == case["dtype"]
    assert_close_inf(got, expected, magnitude, k[0] * k[1] + 1, what="avg_pool2d")
    grad_output = view_of(values(rng, got.shape, case["dtype"]), case["layout"], rng)
    expected_grad = reference.avg_pool2d_backward(grad_output, x, **kwargs)
    magnitude = reference.avg_pool2d_backward(np.abs(grad_output), x, **kwargs)
    with running_on(case["isa"], case["backend"]):
        grad = convforge.avg_pool2d_backward(grad_output, x, **kwargs)
    assert_close(grad, expected_grad, magnitude, k[0] * k[1] + 1, what="avg_pool2d grad_input")


# Pooling over memory layouts: NCHW, dense NHWC (channels_last), and channels_last views that are
# not dense (copied once), each array of a call laid out independently. Outputs follow the
# input's memory format, as in torch.

POOL_LAYOUTS = st.sampled_from(["nchw", "nhwc", "nhwc_strided", "nhwc_channel_slice"])


def in_layout(array, layout):
    """A 4-D array's values in one of POOL_LAYOUTS (the non-dense ones pad with NaN, or -1)."""
    fill = np.nan if array.dtype.kind == "f" else -1
    if layout == "nchw":
        return np.ascontiguousarray(array)
    nhwc = np.ascontiguousarray(array.transpose(0, 2, 3, 1))
    if layout == "nhwc_strided":  # every other pixel of a row
        buffer = np.full(nhwc.shape[:2] + (2 * nhwc.shape[2],) + nhwc.shape[3:], fill, array.dtype)
        buffer[:, :, ::2] = nhwc
        nhwc = buffer[:, :, ::2]
    elif layout == "nhwc_channel_slice":  # some of the channels of a wider array
        buffer = np.full(nhwc.shape[:3] + (nhwc.shape[3] + 3,), fill, array.dtype)
        buffer[..., 1:-2] = nhwc
        nhwc = buffer[..., 1:-2]
    return nhwc.transpose(0, 3, 1, 2)


def assert_memory_format(out, channels_last, what):
    dense = out.transpose(0, 2, 3, 1) if channels_last else out
    assert dense.flags.c_contiguous, f"{what}: strides {out.strides} are not those of a dense " + (
        "channels_last array" if channels_last else "C-contiguous array")


@st.composite
def pool_layout_cases(draw):
    backend = draw(st.sampled_from(BACKENDS))
    tiny = backend != "cpu"
    op = draw(st.sampled_from(["max", "avg"]))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2))) if op == "max" else (1, 1)
    padding = (draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2)))
    grow = st.integers(0, 4 if tiny else 9)
    h = max(1, dilation[0] * (kh - 1) + 1 - 2 * padding[0]) + draw(grow)
    w = max(1, dilation[1] * (kw - 1) + 1 - 2 * padding[1]) + draw(grow)
    kwargs = dict(kernel_size=(kh, kw), padding=padding, ceil_mode=draw(st.booleans()),
                  stride=draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3)))))
    if op == "max":
        kwargs["dilation"] = dilation
    else:
        kwargs["count_include_pad"] = draw(st.booleans())
        kwargs["divisor_override"] = draw(st.one_of(st.none(), st.integers(1, 20)))
    return dict(
        op=op, shape=(draw(st.integers(1, 2)), draw(st.integers(1, 6 if tiny else 40)), h, w), kwargs=kwargs,
        dtype=draw(st.sampled_from(DTYPES)), kind=draw(st.sampled_from(["uniform", "ties", "specials"])),
        layouts=draw(st.tuples(POOL_LAYOUTS, POOL_LAYOUTS, POOL_LAYOUTS)),  # input, grad_output, indices
        isa=draw(st.sampled_from(ISAS)), backend=backend, seed=draw(st.integers(0, 2**32 - 1)),
    )


@given(pool_layout_cases())
@scaled(0.25)
def test_pool2d_layouts(case):
    rng, x = pool_input(dict(case, unbatched=False, layout="contiguous"))
    x_layout, g_layout, idx_layout = case["layouts"]
    x = in_layout(x, x_layout)
    cl = x_layout != "nchw" and channels_last(x)
    kwargs, k = case["kwargs"], case["kwargs"]["kernel_size"]
    if case["op"] == "max":
        expected, expected_idx = reference.max_pool2d(x, return_indices=True, **kwargs)
        with running_on(case["isa"], case["backend"]):
            got, idx = convforge.max_pool2d(x, return_indices=True, **kwargs)
        np.testing.assert_array_equal(got, expected.astype(case["dtype"]))
        empty = expected_idx < 0  # windows wholly in the padding: see test_max_pool2d
        np.testing.assert_array_equal(idx[~empty], expected_idx[~empty])
        assert_memory_format(got, cl, "output")
        assert_memory_format(idx, cl, "indices")
        if empty.any():
            return
        grad_output = in_layout(values(rng, got.shape, case["dtype"]), g_layout)
        idx = in_layout(idx, idx_layout)
        expected_grad = reference.max_pool2d_backward(grad_output, x, idx, **kwargs)
        magnitude = reference.max_pool2d_backward(np.abs(grad_output), x, idx, **kwargs)
        with running_on(case["isa"], case["backend"]):
            grad = convforge.max_pool2d_backward(grad_output, x, idx, **kwargs)
        depth = k[0] * k[1]
    else:
        with np.errstate(invalid="ignore"):  # inf - inf in the references' sums
            expected = reference.avg_pool2d(x, **kwargs)
            magnitude = reference.avg_pool2d(np.abs(x), **kwargs)
        with running_on(case["isa"], case["backend"]):
            got = convforge.avg_pool2d(x, **kwargs)
        assert_close_inf(got, expected, magnitude, k[0] * k[1] + 1, what="avg_pool2d")
        assert_memory_format(got, cl, "output")
        grad_output = in_layout(values(rng, got.shape, case["dtype"]), g_layout)
        expected_grad = reference.avg_pool2d_backward(grad_output, x, **kwargs)
        magnitude = reference.avg_pool2d_backward(np.abs(grad_output), x, **kwargs)
        with running_on(case["isa"], case["backend"]):
            grad = convforge.avg_pool2d_backward(grad_output, x, **kwargs)
        depth = k[0] * k[1] + 1
    assert_close(grad, expected_grad, magnitude, depth, what=f"{case['op']}_pool2d grad_input")
    assert_memory_format(grad, cl, "grad_input")
