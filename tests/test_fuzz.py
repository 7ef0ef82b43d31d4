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
    element of a larger buffer along the last axis), 'reversed' (negative strides) or 'fortran'."""
    if layout == "strided":
        buffer = np.full(array.shape[:-1] + (2 * array.shape[-1] + 1,), np.nan, array.dtype)
        buffer[..., 1::2] = array
        return buffer[..., 1::2]
    if layout == "reversed":
        return np.flip(np.flip(array, -1).copy(), -1)
    if layout == "fortran":
        return np.asfortranarray(array)
    return array


LAYOUTS = st.sampled_from(["contiguous", "strided", "reversed", "fortran"])


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
@example(gemm_case(4, 3, 3, layout_a="reversed_rows"))  # read past the array (negative stride)
@example(gemm_case(4, 3, 3, layout_a="broadcast_rows"))  # read past the array (zero stride)
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
    with running_on(case["isa"], case["backend"]):
        got = convforge.gemm(a, b, c, out=out, **kwargs)
    assert got.dtype == dtype and got.shape == (m, n)
    assert out is None or got is out
    assert_close(got, expected, magnitude, depth=k + 2, what="gemm")
    np.testing.assert_array_equal(a, a_before)  # inputs are never written
    np.testing.assert_array_equal(b, b_before)
