"""Conv2d on convforge's conv2d kernels."""

import math

import numpy as np

from .. import _C
from .. import functional as F
from .._args import pair, positive_pair
from . import init
from .module import Module
from .parameter import Parameter


def _check_channels(input_shape, expected, what):
    if len(input_shape) not in (3, 4):
        raise ValueError(f"input: expected 3 or 4 dimensions, got shape {tuple(input_shape)}")
    if input_shape[-3] != expected:
        raise ValueError(f"input: {what} expected {expected} channels, got {input_shape[-3]} "
                         f"(shape {tuple(input_shape)})")


class Conv2d(Module):
    """2-D convolution over NCHW (or unbatched CHW) input, as ``torch.nn.Conv2d``: same
    arguments, defaults and initialisation (Kaiming-uniform with a = sqrt(5); bias
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)))."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode="zeros", device=None, dtype=None):
        super().__init__()
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels), ("groups", groups)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name}: expected a positive integer, got {value!r}")
        if in_channels % groups:
            raise ValueError(f"in_channels: expected a multiple of groups={groups}, got {in_channels}")
        if out_channels % groups:
            raise ValueError(f"out_channels: expected a multiple of groups={groups}, got {out_channels}")
        if padding_mode != "zeros":
            raise ValueError(f"padding_mode: only 'zeros' is supported, got {padding_mode!r}")
        if device not in (None, "cpu"):
            raise ValueError(f"device: only 'cpu' is supported, got {device!r}")
        self.in_channels, self.out_channels, self.groups = int(in_channels), int(out_channels), int(groups)
        self.kernel_size = positive_pair(kernel_size, "kernel_size")
        self.stride = positive_pair(stride, "stride")
        self.dilation = positive_pair(dilation, "dilation")
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"padding: expected 'valid', 'same', an int or a pair, got {padding!r}")
            if padding == "same" and self.stride != (1, 1):
                raise ValueError("padding='same' is not supported for strided convolutions")
            self.padding = padding
        else:
            self.padding = pair(padding, "padding")
            if min(self.padding) < 0:
                raise ValueError(f"padding: expected non-negative values, got {padding!r}")
        self.padding_mode = padding_mode
        dtype = np.dtype(np.float32 if dtype is None else dtype)
        shape = (self.out_channels, self.in_channels // self.groups, *self.kernel_size)
        self.weight = Parameter(np.empty(shape, dtype))
        self.bias = Parameter(np.empty(self.out_channels, dtype)) if bias else None
        self.reset_parameters()
        self._input = None

    def reset_parameters(self):
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init._calculate_fan_in_and_fan_out(self.weight)
            if fan_in:
                bound = 1 / math.sqrt(fan_in)
                init.uniform_(self.bias, -bound, bound)

    def _args(self):
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation, groups=self.groups)

    def forward(self, input):
        self._input = input
        return F.conv2d(input, self.weight.data, None if self.bias is None else self.bias.data, **self._args())

    def backward(self, grad_output, need_input_grad=True):
        if self._input is None:
            raise RuntimeError("Conv2d.backward called before forward")
        want_weight = self.weight.requires_grad
        want_bias = self.bias is not None and self.bias.requires_grad
        grad_input, grad_weight, grad_bias = F.conv2d_backward(
            grad_output, self._input, self.weight.data, **self._args(),
            output_mask=(need_input_grad, want_weight, want_bias))
        if want_weight:
            self.weight.accumulate_grad(grad_weight)
        if want_bias:
            self.bias.accumulate_grad(grad_bias)
        self._input = None
        return grad_input

    def output_shape(self, input_shape):
        _check_channels(input_shape, self.in_channels, "Conv2d")
        kh, kw = self.kernel_size
        if self.padding == "valid":
            pads = (0, 0, 0, 0)
        elif self.padding == "same":
            th, tw = self.dilation[0] * (kh - 1), self.dilation[1] * (kw - 1)
            pads = (th // 2, th - th // 2, tw // 2, tw - tw // 2)
        else:
            pads = (self.padding[0], self.padding[0], self.padding[1], self.padding[1])
        oh, ow = _C.conv2d_output_size(input_shape[-2], input_shape[-1], self.kernel_size, self.stride,
                                       pads, self.dilation)
        if oh <= 0 or ow <= 0:
            raise ValueError(f"input: spatial size {tuple(input_shape[-2:])} is too small for {self!r}")
        return (*input_shape[:-3], self.out_channels, oh, ow)

    def extra_repr(self):
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s
