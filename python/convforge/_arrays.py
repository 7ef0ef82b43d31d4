"""Array adapters: how the functional API reads its inputs and allocates outputs in the caller's
array library (NumPy in, NumPy out)."""

import numpy as np


def as_input(x, name):
    """A C-contiguous array the kernels can read; non-contiguous inputs are copied once."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name}: expected a NumPy array, got {type(x).__name__}")
    return np.ascontiguousarray(x)


def empty(like, shape, dtype=None):
    """An uninitialised output in the same library (and device) as `like`."""
    return np.empty(shape, dtype=like.dtype if dtype is None else dtype)
