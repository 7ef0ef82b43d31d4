"""ReLU and Dropout."""

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
