import numpy as np
import pytest

import convforge
from convforge import reference
from helpers import assert_close, random

DTYPES = [np.float32, np.float64]
TILES = convforge.info()["gemm_tiles"]  # {isa: {dtype: (MR, NR)}}
BLOCKING = convforge.info()["gemm_blocking"]  # {isa: {dtype: {"kc", "mc", "nc"}}}


def layout(x, kind):
    """x itself ("c"), a column-major copy ("f"), or a view with a row stride wider than its rows."""
    if kind == "f":
        return np.asfortranarray(x)
    if kind == "wide":
        wider = np.full((x.shape[0], x.shape[1] + 5), np.nan, x.dtype)
        wider[:, : x.shape[1]] = x
        return wider[:, : x.shape[1]]
    return x


def check_gemm(m, n, k, dtype=np.float32, trans_a=False, trans_b=False, alpha=1.0, beta=0.0,
               layout_a="c", layout_b="c", c_fill=None):
    a = layout(random((k, m) if trans_a else (m, k), dtype, "a"), layout_a)
    b = layout(random((n, k) if trans_b else (k, n), dtype, "b"), layout_b)
    c = random((m, n), dtype, "c") if c_fill is None else np.full((m, n), c_fill, dtype)
    got = convforge.gemm(a, b, c, alpha=alpha, beta=beta, trans_a=trans_a, trans_b=trans_b)
    c_ref = None if beta == 0 else c  # beta == 0: C is not read (BLAS)
    expected = reference.gemm(a, b, c_ref, alpha=alpha, beta=beta, trans_a=trans_a, trans_b=trans_b)
    magnitude = reference.gemm(np.abs(a), np.abs(b), None if c_ref is None else np.abs(c),
                               alpha=abs(alpha), beta=abs(beta), trans_a=trans_a, trans_b=trans_b)
    assert got.dtype == dtype
    assert_close(got, expected, magnitude, depth=k + 1)
    return got


def tile_of(isa, dtype):
    return TILES[isa][np.dtype(dtype).name]


@pytest.mark.parametrize("size", [0, 1, 2, 3, 7, 13, 31, 64, 97, 128, 257])
@pytest.mark.parametrize("dtype", DTYPES)
def test_square(size, dtype, isa):
    check_gemm(size, size, size, dtype)


@pytest.mark.parametrize("m,n,k", [(0, 5, 3), (5, 0, 3), (5, 3, 0), (1, 1, 1), (1, 97, 13), (97, 1, 13),
                                   (2, 3, 1), (1, 1, 1009), (61, 67, 71), (5, 7, 521)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_odd_shapes(m, n, k, dtype, isa):
    check_gemm(m, n, k, dtype, alpha=1.5, beta=0.5)


@pytest.mark.parametrize("dm", [-1, 0, 1])
@pytest.mark.parametrize("dn", [-1, 0, 1])
@pytest.mark.parametrize("dtype", DTYPES)
def test_tile_edges(dm, dn, dtype, isa):
    mr, nr = tile_of(isa, dtype)
    check_gemm(mr + dm, nr + dn, 11, dtype)


@pytest.mark.parametrize("dm", [-1, 0, 1])
@pytest.mark.parametrize("dn", [-1, 0, 1])
@pytest.mark.parametrize("dtype", DTYPES)
def test_tile_multiples_edges(dm, dn, dtype, isa):
    mr, nr = tile_of(isa, dtype)
    check_gemm(3 * mr + dm, 2 * nr + dn, 600, dtype, beta=1.0)  # k crosses a k-block (kc <= 512)


@pytest.mark.parametrize("m", range(1, 17))
def test_every_edge_row_count(m, isa):
    check_gemm(m, tile_of(isa, np.float32)[1] + 3, 9)


@pytest.mark.parametrize("m,n,k", [(1000, 1100, 1200), (20, 4200, 30), (700, 20, 900)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_large(m, n, k, dtype):
    check_gemm(m, n, k, dtype, beta=0.5)


@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
def test_transposes(trans_a, trans_b, dtype, isa):
    check_gemm(37, 53, 29, dtype, trans_a=trans_a, trans_b=trans_b)


@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
def test_transposes_blocked(trans_a, trans_b):
    check_gemm(290, 310, 530, trans_a=trans_a, trans_b=trans_b)


@pytest.mark.parametrize("alpha,beta", [(1.0, 0.0), (2.5, 0.0), (1.0, 1.0), (-0.5, 3.0), (0.0, 2.0)])
def test_alpha_beta(alpha, beta, isa):
    check_gemm(19, 23, 17, alpha=alpha, beta=beta)


@pytest.mark.parametrize("dtype", DTYPES)
def test_beta_zero_ignores_nan_in_c(dtype, isa):
    assert np.isfinite(check_gemm(23, 41, 600, dtype, beta=0.0, c_fill=np.nan)).all()


@pytest.mark.parametrize("layout_a", ["c", "f", "wide"])
@pytest.mark.parametrize("layout_b", ["c", "f", "wide"])
@pytest.mark.parametrize("trans_a", [False, True])
def test_layouts(layout_a, layout_b, trans_a, isa):
    check_gemm(29, 35, 18, trans_a=trans_a, layout_a=layout_a, layout_b=layout_b)


def test_out_is_written_and_returned():
    a, b = random((8, 5), np.float32, 1), random((5, 6), np.float32, 2)
    out = np.full((8, 6), np.nan, np.float32)
    assert convforge.gemm(a, b, out=out) is out
    assert_close(out, reference.gemm(a, b), reference.gemm(np.abs(a), np.abs(b)), depth=5)


def test_out_is_c_accumulates():
    a, b, c = random((30, 40), np.float32, 1), random((40, 50), np.float32, 2), random((30, 50), np.float32, 3)
    expected = reference.gemm(a, b, c, beta=1.0)
    assert convforge.gemm(a, b, c, beta=1.0, out=c) is c
    assert_close(c, expected, reference.gemm(np.abs(a), np.abs(b), np.abs(expected), beta=1.0), depth=41)


def test_out_with_row_stride():
    a, b = random((9, 5), np.float32, 1), random((5, 6), np.float32, 2)
    wide = np.full((9, 10), 7.0, np.float32)
    convforge.gemm(a, b, out=wide[:, :6])
    assert_close(wide[:, :6], reference.gemm(a, b), reference.gemm(np.abs(a), np.abs(b)), depth=5)
    assert (wide[:, 6:] == 7.0).all()


@pytest.mark.parametrize("m,n,k", [(301, 257, 300), (40, 1000, 200), (1000, 40, 200), (97, 1203, 1)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_threads_bitwise_equal(m, n, k, dtype, isa, threads):
    a, b = random((m, k), dtype, "a"), random((k, n), dtype, "b")
    threads(1)
    one = convforge.gemm(a, b)
    threads(2)
    assert np.array_equal(one, convforge.gemm(a, b))


# How gemm_packed splits a product over threads, in units of the ISA's tile and blocks: the
# columns when A is one block and no bigger than B, else the dimension with more tiles (rows: a
# team sharing each packed B block, over several k blocks and A blocks).
SPLITS = {
    "columns, A one block": lambda mr, nr, b: (4 * mr + 3, 5 * nr + 5, 37),
    "columns, wider than tall": lambda mr, nr, b: (b["mc"] + mr + 1, 4 * b["mc"], 29),
    "rows, taller than wide": lambda mr, nr, b: (4 * nr + 9, 2 * nr - 3, 41),
    "rows, team over k and A blocks": lambda mr, nr, b: (2 * b["mc"] + 5, 2 * nr + 1, 2 * b["kc"] + 3),
    "rows, one column tile": lambda mr, nr, b: (3 * mr + 1, nr - 1, 19),
}


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_thread_splits(split, dtype, isa, threads):
    mr, nr = tile_of(isa, dtype)
    m, n, k = SPLITS[split](mr, nr, BLOCKING[isa][np.dtype(dtype).name])
    threads(1)
    one = check_gemm(m, n, k, dtype)
    for count in (2, 3):
        threads(count)
        assert np.array_equal(convforge.gemm(random((m, k), dtype, "a"), random((k, n), dtype, "b")), one)


# A batch of few rows times a weight stored as rows (a Linear layer, ``x @ w.T``): computed as
# (w @ x.T).T, the weight read in place. Rows of the weight 4 KiB apart (k = 1024), several k
# blocks, weight tiles and batch tiles with remainders, alpha / beta, a row-strided weight view.
@pytest.mark.parametrize("k_of", [lambda b: 1024, lambda b: 2 * b["kc"] + 7, lambda b: 3])
@pytest.mark.parametrize("alpha,beta", [(1.0, 0.0), (0.5, 2.0), (-1.0, 1.0)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_small_batch_transposed_weight(k_of, alpha, beta, dtype, isa, threads):
    mr, nr = tile_of(isa, dtype)
    m, n, k = 4 * nr - 3, 9 * mr + 5, k_of(BLOCKING[isa][np.dtype(dtype).name])
    threads(1)
    one = check_gemm(m, n, k, dtype, trans_b=True, alpha=alpha, beta=beta, layout_b="wide")
    for count in (2, 3):
        threads(count)
        again = check_gemm(m, n, k, dtype, trans_b=True, alpha=alpha, beta=beta, layout_b="wide")
        assert np.array_equal(again, one)


def test_blocking_fits_the_caches():
    caches = convforge.info()["caches"]
    for isa, per_dtype in BLOCKING.items():
        for dtype, blocks in per_dtype.items():
            mr, nr = TILES[isa][dtype]
            itemsize = np.dtype(dtype).itemsize
            assert blocks["mc"] % mr == 0 and blocks["nc"] % nr == 0
            assert blocks["mc"] * blocks["kc"] * itemsize <= caches["l2"]
            assert blocks["kc"] * blocks["nc"] * itemsize <= max(caches["l3_per_core"], 16 * nr * blocks["kc"] * itemsize)


@pytest.mark.parametrize("m,n,k", [(1, 1, 1), (17, 33, 9), (64, 64, 64)])
def test_backends(m, n, k, backend):
    check_gemm(m, n, k, alpha=0.5, beta=2.0)


def test_matmul_2d_and_batched():
    a, b, b3 = random((3, 7, 5), np.float32, 1), random((5, 4), np.float32, 2), random((3, 5, 4), np.float32, 3)
    assert_close(convforge.matmul(a[0], b), reference.matmul(a[0], b), reference.matmul(np.abs(a[0]), np.abs(b)), depth=5)
    assert_close(convforge.matmul(a, b), reference.matmul(a, b), reference.matmul(np.abs(a), np.abs(b)), depth=5)
    assert_close(convforge.matmul(a, b3), reference.matmul(a, b3), reference.matmul(np.abs(a), np.abs(b3)), depth=5)


# Bad input: a ValueError/TypeError naming the argument.
F32 = np.zeros((3, 5), np.float32), np.zeros((5, 2), np.float32)


def bad(error, match, a=F32[0], b=F32[1], c=None, **kwargs):
    with pytest.raises(error, match=match):
        convforge.gemm(a, b, c, **kwargs)


def test_bad_inner_dimension():
    bad(ValueError, "b: expected 5 rows", b=np.zeros((4, 2), np.float32))


def test_bad_inner_dimension_transposed():
    bad(ValueError, "b: expected 5 rows", b=np.zeros((2, 4), np.float32), trans_b=True)


def test_bad_ndim_a():
    bad(ValueError, "a: expected 2 dimensions, got 1", a=np.zeros(5, np.float32))


def test_bad_ndim_b():
    bad(ValueError, "b: expected 2 dimensions, got 3", b=np.zeros((5, 2, 1), np.float32))


def test_bad_not_an_array():
    bad(TypeError, "a: expected a NumPy array, got list", a=[[1.0]])


@pytest.mark.parametrize("dtype", [np.int32, np.float16, np.complex64])
def test_bad_dtype(dtype):
    bad(TypeError, "a: expected dtype float32 or float64", a=np.zeros((3, 5), dtype))


def test_bad_int64():
    bad(TypeError, "a: expected dtype float32 or float64, got int64", a=np.zeros((3, 5), np.int64))


def test_bad_mixed_dtypes():
    bad(TypeError, "b: expected dtype float32, got float64", b=np.zeros((5, 2), np.float64))


def test_bad_c_dtype():
    bad(TypeError, "c: expected dtype float32, got float64", c=np.zeros((3, 2), np.float64), beta=1.0)


def test_bad_c_shape():
    bad(ValueError, r"c: expected shape \(3, 2\), got \(2, 3\)", c=np.zeros((2, 3), np.float32), beta=1.0)


def test_bad_unstridable_a():
    bad(ValueError, "a: expected unit stride along one axis", a=np.zeros((3, 10), np.float32)[:, ::2])


def test_bad_unstridable_b():
    bad(ValueError, "b: expected unit stride along one axis", b=np.zeros((10, 4), np.float32)[::2, ::2])


def test_bad_out_readonly():
    out = np.zeros((3, 2), np.float32)
    out.flags.writeable = False
    bad(ValueError, "out: expected a writable array", out=out)


def test_bad_out_shape():
    bad(ValueError, r"out: expected shape \(3, 2\), got \(2, 3\)", out=np.zeros((2, 3), np.float32))


def test_bad_out_dtype():
    bad(TypeError, "out: expected dtype float32, got float64", out=np.zeros((3, 2), np.float64))


def test_bad_out_column_stride():
    bad(ValueError, "out: expected unit stride along columns", out=np.zeros((3, 4), np.float32)[:, ::2])


def test_bad_out_overlaps_a():
    buf = np.zeros((3, 5), np.float32)
    bad(ValueError, "out: expected memory disjoint from a", a=buf, b=np.zeros((5, 2), np.float32), out=buf[:, :2])


def test_bad_out_overlaps_b():
    buf = np.zeros((5, 2), np.float32)
    bad(ValueError, "out: expected memory disjoint from b", b=buf, out=buf[:3])


def test_bad_matmul_batch():
    with pytest.raises(ValueError, match="b: expected a batch of 2"):
        convforge.matmul(np.zeros((2, 3, 4), np.float32), np.zeros((3, 4, 5), np.float32))
