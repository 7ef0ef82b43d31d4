"""Reference GEMM: NumPy's float64 product."""

import numpy as np


def gemm(a, b, c=None, *, alpha=1.0, beta=0.0, trans_a=False, trans_b=False):
    """``alpha * op(a) @ op(b) + beta * c`` in float64."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    product = alpha * ((a.T if trans_a else a) @ (b.T if trans_b else b))
    if c is not None and beta != 0.0:
        product = product + beta * np.asarray(c, dtype=np.float64)
    return product


def matmul(a, b):
    return np.matmul(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
