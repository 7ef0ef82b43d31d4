import numpy as np
import pytest

import convforge
from convforge import reference
from helpers import assert_close, random

DTYPES = [np.float32, np.float64]


def check_gemm(m, n, k, dtype=np.float32, trans_a=False, trans_b=False, alpha=1.0, beta=0.0):
    a = random((k, m) if trans_a else (m, k), dtype, "a")
    b = random((n, k) if trans_b else (k, n), dtype, "b")
    c = random((m, n), dtype, "c")
    got = convforge.gemm(a, b, c, alpha=alpha, beta=beta, trans_a=trans_a, trans_b=trans_b)
    expected = reference.gemm(a, b, c, alpha=alpha, beta=beta, trans_a=trans_a, trans_b=trans_b)
    magnitude = reference.gemm(np.abs(a), np.abs(b), np.abs(c), alpha=abs(alpha), beta=abs(beta),
                               trans_a=trans_a, trans_b=trans_b)
    assert got.dtype == dtype
    assert_close(got, expected, magnitude, depth=k + 1)


@pytest.mark.parametrize("size", [0, 1, 2, 3, 7, 13, 31, 64, 97, 128, 257])
@pytest.mark.parametrize("dtype", DTYPES)
def test_square(size, dtype, isa):
    check_gemm(size, size, size, dtype)


@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
def test_transposes(trans_a, trans_b, isa):
    check_gemm(37, 53, 29, trans_a=trans_a, trans_b=trans_b)


@pytest.mark.parametrize("alpha,beta", [(1.0, 0.0), (2.5, 0.0), (1.0, 1.0), (-0.5, 3.0), (0.0, 2.0)])
def test_alpha_beta(alpha, beta):
    check_gemm(19, 23, 17, alpha=alpha, beta=beta)


def test_out_is_written_and_returned():
    a, b = random((8, 5), np.float32, 1), random((5, 6), np.float32, 2)
    out = np.full((8, 6), np.nan, np.float32)
    assert convforge.gemm(a, b, out=out) is out
    assert_close(out, reference.gemm(a, b), reference.gemm(np.abs(a), np.abs(b)), depth=5)


def test_bad_inner_dimension():
    with pytest.raises(ValueError, match="b: expected 5 rows"):
        convforge.gemm(np.zeros((3, 5), np.float32), np.zeros((4, 2), np.float32))
