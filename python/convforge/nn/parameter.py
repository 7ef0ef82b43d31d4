"""Parameter: a trainable array and the gradient accumulated for it."""

import numpy as np


class Parameter:
    """A module's trainable array (``.data``) and its accumulated gradient (``.grad``, ``None``
    until a backward pass writes one), as ``torch.nn.Parameter``. Optimisers update ``.data``
    in place, so arrays handed out by ``state_dict()`` stay live views of the model."""

    __slots__ = ("data", "grad", "requires_grad")

    def __init__(self, data, requires_grad=True):
        if isinstance(data, Parameter):
            data = data.data
        if not isinstance(data, np.ndarray):
            raise TypeError(f"data: expected a NumPy array, got {type(data).__name__}")
        if data.dtype.kind != "f":
            raise TypeError(f"data: expected a floating-point array, got dtype {data.dtype}")
        self.data = np.ascontiguousarray(data)
        self.grad = None
        self.requires_grad = bool(requires_grad)

    shape = property(lambda self: self.data.shape)
    dtype = property(lambda self: self.data.dtype)
    ndim = property(lambda self: self.data.ndim)
    size = property(lambda self: self.data.size)

    def numel(self):
        return int(self.data.size)

    def __array__(self, dtype=None, copy=None):
        if copy:
            return np.array(self.data, dtype=dtype)
        return self.data if dtype is None else self.data.astype(dtype, copy=False)

    def accumulate_grad(self, grad):
        """Add ``grad`` to ``.grad`` (taking ownership of ``grad`` when ``.grad`` is ``None``)."""
        if not self.requires_grad:
            return
        if self.grad is None:
            self.grad = grad
        else:
            self.grad += grad

    def __repr__(self):
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype})"
