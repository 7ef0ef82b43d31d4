"""Activations (ReLU, LeakyReLU, Sigmoid, Tanh, Softmax, LogSoftmax), Identity and Dropout."""

import warnings

import numpy as np

from . import init
from .module import Module


class ReLU(Module):
    """``max(x, 0)`` elementwise, as ``torch.nn.ReLU`` (the gradient at 0 is 0)."""

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace
        self._mask = None

    def forward(self, input):
        if not isinstance(input, np.ndarray):
            raise TypeError(f"input: expected a NumPy array, got {type(input).__name__}")
        out = np.maximum(input, 0, out=input if self.inplace else None)
        self._mask = out > 0
        return out

    def backward(self, grad_output, need_input_grad=True):
        if self._mask is None:
            raise RuntimeError("ReLU.backward called before forward")
        mask, self._mask = self._mask, None
        return np.multiply(grad_output, mask, dtype=grad_output.dtype) if need_input_grad else None

    def output_shape(self, input_shape):
        return tuple(input_shape)

    def extra_repr(self):
        return "inplace=True" if self.inplace else ""


class Dropout(Module):
    """Zero each element with probability ``p`` in training mode and scale the rest by
    ``1 / (1 - p)``; the identity in eval mode, as ``torch.nn.Dropout``. Draws from the generator
    that :func:`convforge.nn.init.manual_seed` seeds."""

    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p: expected a probability between 0 and 1, got {p}")
        self.p, self.inplace = float(p), inplace
        self._scale = None

    def forward(self, input):
        if not self.training or self.p == 0.0:
            self._scale = 1.0
            return input
        if self.p == 1.0:
            scale = np.zeros(input.shape, input.dtype)
        else:
            keep = init.default_generator().random(input.shape, dtype=np.float32) >= self.p
            scale = keep.astype(input.dtype) * input.dtype.type(1.0 / (1.0 - self.p))
        self._scale = scale
        return np.multiply(input, scale, out=input if self.inplace else None)

    def backward(self, grad_output, need_input_grad=True):
        if self._scale is None:
            raise RuntimeError("Dropout.backward called before forward")
        scale, self._scale = self._scale, None
        if not need_input_grad:
            return None
        return grad_output if isinstance(scale, float) else grad_output * scale

    def output_shape(self, input_shape):
        return tuple(input_shape)

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}"


def _check_array(input):
    if not isinstance(input, np.ndarray):
        raise TypeError(f"input: expected a NumPy array, got {type(input).__name__}")
    if input.dtype.kind != "f":
        raise TypeError(f"input: expected a floating-point array, got dtype {input.dtype}")


class _Elementwise(Module):
    """An activation whose gradient comes from what ``forward`` saved (``self._saved``)."""

    def __init__(self):
        super().__init__()
        self._saved = None

    def _take(self):
        if self._saved is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        saved, self._saved = self._saved, None
        return saved

    def output_shape(self, input_shape):
        return tuple(input_shape)


class Identity(Module):
    """Returns its input; takes and ignores any arguments, as ``torch.nn.Identity`` (a placeholder
    where a layer is removed, e.g. a model's classifier when it serves as a feature extractor)."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, input):
        return input

    def backward(self, grad_output, need_input_grad=True):
        return grad_output if need_input_grad else None

    def output_shape(self, input_shape):
        return tuple(input_shape)


class LeakyReLU(_Elementwise):
    """``x`` where ``x > 0``, else ``negative_slope * x``, as ``torch.nn.LeakyReLU`` (the gradient
    at 0 is ``negative_slope``, as torch's)."""

    def __init__(self, negative_slope=0.01, inplace=False):
        super().__init__()
        self.negative_slope, self.inplace = float(negative_slope), inplace

    def forward(self, input):
        _check_array(input)
        positive = input > 0
        out = np.multiply(input, input.dtype.type(self.negative_slope), out=input if self.inplace else None,
                          where=~positive)
        if not self.inplace:
            np.copyto(out, input, where=positive)
        self._saved = positive
        return out

    def backward(self, grad_output, need_input_grad=True):
        positive = self._take()
        if not need_input_grad:
            return None
        return np.where(positive, grad_output, grad_output * grad_output.dtype.type(self.negative_slope))

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace else "")


class Sigmoid(_Elementwise):
    """``1 / (1 + exp(-x))``, as ``torch.nn.Sigmoid``; computed without overflow for large ``|x|``."""

    def forward(self, input):
        _check_array(input)
        e = np.exp(-np.abs(input))  # in (0, 1]: no overflow
        out = np.where(input >= 0, 1 / (1 + e), e / (1 + e)).astype(input.dtype, copy=False)
        self._saved = out
        return out

    def backward(self, grad_output, need_input_grad=True):
        out = self._take()
        return grad_output * (out * (1 - out)) if need_input_grad else None


class Tanh(_Elementwise):
    """``tanh(x)``, as ``torch.nn.Tanh``."""

    def forward(self, input):
        _check_array(input)
        out = np.tanh(input)
        self._saved = out
        return out

    def backward(self, grad_output, need_input_grad=True):
        out = self._take()
        return grad_output * (1 - out * out) if need_input_grad else None


def _softmax_dim(module, ndim):
    dim = module.dim
    if dim is None:  # torch's legacy rule, with its warning
        warnings.warn(f"Implicit dimension choice for {type(module).__name__.lower()} has been deprecated. "
                      "Change the call to include dim=X as an argument.", stacklevel=3)
        dim = 0 if ndim in (0, 1, 3) else 1
    if not -max(ndim, 1) <= dim < max(ndim, 1):
        raise ValueError(f"dim: expected a dimension in [{-max(ndim, 1)}, {max(ndim, 1) - 1}], got {dim}")
    return dim % max(ndim, 1) if ndim else None


class _AlongDim(_Elementwise):
    """An activation computed along one dimension (Softmax, LogSoftmax)."""

    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def extra_repr(self):
        return f"dim={self.dim}"


class Softmax(_AlongDim):
    """``exp(x) / sum(exp(x))`` along ``dim``, as ``torch.nn.Softmax`` (shifted by the maximum, so
    large inputs do not overflow)."""

    def forward(self, input):
        _check_array(input)
        dim = _softmax_dim(self, input.ndim)
        e = np.exp(input - input.max(axis=dim, keepdims=True))
        out = e / e.sum(axis=dim, keepdims=True)
        self._saved = (out, dim)
        return out

    def backward(self, grad_output, need_input_grad=True):
        out, dim = self._take()
        if not need_input_grad:
            return None
        return out * (grad_output - (grad_output * out).sum(axis=dim, keepdims=True))


class LogSoftmax(_AlongDim):
    """``x - log(sum(exp(x)))`` along ``dim``, as ``torch.nn.LogSoftmax`` (stable for large inputs)."""

    def forward(self, input):
        _check_array(input)
        dim = _softmax_dim(self, input.ndim)
        shifted = input - input.max(axis=dim, keepdims=True)
        out = shifted - np.log(np.exp(shifted).sum(axis=dim, keepdims=True))
        self._saved = (out, dim)
        return out

    def backward(self, grad_output, need_input_grad=True):
        out, dim = self._take()
        if not need_input_grad:
            return None
        return grad_output - np.exp(out) * grad_output.sum(axis=dim, keepdims=True)

