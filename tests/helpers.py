"""The one test helper: compare a kernel's result with a float64 reference under a tolerance
derived from the arithmetic, not a magic atol.

A sum of `depth` float terms computed in precision `eps` drifts from the exact sum by about
eps * sqrt(depth) * (sum of |terms|), whatever the summation order. `magnitude` is that sum of
|terms| per output element: the reference evaluated on the absolute values of the inputs.
"""

import math
import zlib

import numpy as np

RNG_SEED = 20261122


def rng(*salt):
    # crc32 of the repr, not hash(): the same data in every process, whatever PYTHONHASHSEED is.
    return np.random.default_rng([RNG_SEED, *[zlib.crc32(repr(s).encode()) for s in salt]])


def random(shape, dtype=np.float32, *salt, low=-1.0, high=1.0):
    return rng(shape, *salt).uniform(low, high, size=shape).astype(dtype)


def tolerance(magnitude, depth, dtype):
    eps = np.finfo(dtype).eps
    tiny = np.finfo(dtype).tiny
    return 8.0 * eps * math.sqrt(depth + 1) * np.asarray(magnitude, dtype=np.float64) + tiny


def assert_close(actual, expected, magnitude, depth, dtype=None, what="result"):
    """actual (any float dtype) against expected (float64) within tolerance(magnitude, depth)."""
    actual = np.asarray(actual)
    dtype = actual.dtype if dtype is None else dtype
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != expected {expected.shape}"
    error = np.abs(actual.astype(np.float64) - expected)
    allowed = tolerance(magnitude, depth, dtype)
    nan_mismatch = np.isnan(actual) != np.isnan(expected)
    assert not nan_mismatch.any(), f"{what}: NaN pattern differs from the reference"
    bad = ~(error <= allowed) & ~np.isnan(expected)
    if bad.any():
        i = np.unravel_index(np.argmax(np.where(bad, error - allowed, -np.inf)), error.shape)
        raise AssertionError(
            f"{what}: {bad.sum()} of {bad.size} elements off; worst at {i}: got {actual[i]!r}, "
            f"expected {expected[i]!r}, allowed error {allowed[i] if allowed.ndim else allowed:.3g}"
        )
