"""Linear on convforge's GEMM, and Flatten."""

import math

import numpy as np

from .. import functional as F
from . import init
from .module import Module
from .parameter import Parameter


class Linear(Module):
    """``y = x @ weight.T + bias`` over the last dimension, as ``torch.nn.Linear`` (weight is
    (out_features, in_features); same initialisation as torch)."""

    def __init__(self, in_features, out_features, bias=True, device=None, dtype=None):
        super().__init__()
        for name, value in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name}: expected a non-negative integer, got {value!r}")
        if device not in (None, "cpu"):
            raise ValueError(f"device: only 'cpu' is supported, got {device!r}")
        self.in_features, self.out_features = int(in_features), int(out_features)
        dtype = np.dtype(np.float32 if dtype is None else dtype)
        self.weight = Parameter(np.empty((self.out_features, self.in_features), dtype))
        self.bias = Parameter(np.empty(self.out_features, dtype)) if bias else None
        self.reset_parameters()
        self._input = None

    def reset_parameters(self):
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features) if self.in_features > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def _rows(self, input):
        if not isinstance(input, np.ndarray):
            raise TypeError(f"input: expected a NumPy array, got {type(input).__name__}")
        if input.ndim == 0 or input.shape[-1] != self.in_features:
            raise ValueError(f"input: expected a last dimension of {self.in_features}, got shape {input.shape}")
        return input.reshape(-1, self.in_features)

    def forward(self, input):
        rows = self._rows(input)
        self._input = rows
        out = F.gemm(rows, self.weight.data, trans_b=True)
        if self.bias is not None:
            out += self.bias.data
        return out.reshape(*input.shape[:-1], self.out_features)

    def backward(self, grad_output, need_input_grad=True):
        if self._input is None:
            raise RuntimeError("Linear.backward called before forward")
        rows, self._input = self._input, None
        g = np.ascontiguousarray(grad_output).reshape(-1, self.out_features)
        if self.weight.requires_grad:
            if self.weight.grad is None:
                self.weight.grad = F.gemm(g, rows, trans_a=True)
            else:  # accumulate in place: grad = g.T @ x + 1 * grad
                F.gemm(g, rows, self.weight.grad, beta=1.0, trans_a=True, out=self.weight.grad)
        if self.bias is not None and self.bias.requires_grad:
            self.bias.accumulate_grad(g.sum(axis=0))
        if not need_input_grad:
            return None
        return F.gemm(g, self.weight.data).reshape(*grad_output.shape[:-1], self.in_features)

    def output_shape(self, input_shape):
        if len(input_shape) == 0 or input_shape[-1] != self.in_features:
            raise ValueError(f"input: Linear expected a last dimension of {self.in_features}, "
                             f"got shape {tuple(input_shape)}")
        return (*input_shape[:-1], self.out_features)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Flatten(Module):
    """Flatten dimensions ``start_dim`` .. ``end_dim`` into one, as ``torch.nn.Flatten``."""

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim
        self._shape = None

    def _flat_shape(self, shape):
        ndim = len(shape)
        if ndim == 0:
            return (1,)
        start = self.start_dim + ndim if self.start_dim < 0 else self.start_dim
        end = self.end_dim + ndim if self.end_dim < 0 else self.end_dim
        if not (0 <= start < ndim and 0 <= end < ndim) or start > end:
            raise ValueError(f"Flatten(start_dim={self.start_dim}, end_dim={self.end_dim}): "
                             f"invalid for an input of shape {tuple(shape)}")
        return (*shape[:start], math.prod(shape[start:end + 1]), *shape[end + 1:])

    def forward(self, input):
        self._shape = input.shape
        return input.reshape(self._flat_shape(input.shape))

    def backward(self, grad_output, need_input_grad=True):
        if self._shape is None:
            raise RuntimeError("Flatten.backward called before forward")
        shape, self._shape = self._shape, None
        return grad_output.reshape(shape) if need_input_grad else None

    def output_shape(self, input_shape):
        return self._flat_shape(tuple(input_shape))

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"
