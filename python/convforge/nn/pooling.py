"""MaxPool2d, AvgPool2d and their adaptive forms on convforge's pooling kernels."""

import numpy as np

from .. import _C
from .. import functional as F
from .._args import pair, positive_pair
from .module import Module


def _pool_shape(module, input_shape, dilation):
    if len(input_shape) not in (3, 4):
        raise ValueError(f"input: expected 3 or 4 dimensions, got shape {tuple(input_shape)}")
    kernel = positive_pair(module.kernel_size, "kernel_size")
    stride = positive_pair(module.stride, "stride")
    padding = pair(module.padding, "padding")
    oh, ow = _C.pool2d_output_size(input_shape[-2], input_shape[-1], kernel, stride, padding,
                                   positive_pair(dilation, "dilation"), bool(module.ceil_mode))
    if oh <= 0 or ow <= 0:
        raise ValueError(f"input: spatial size {tuple(input_shape[-2:])} is too small for {module!r}")
    return (*input_shape[:-2], oh, ow)


class MaxPool2d(Module):
    """2-D max pooling, as ``torch.nn.MaxPool2d`` (``stride`` defaults to ``kernel_size``)."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False, ceil_mode=False):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.dilation = dilation
        self.return_indices = return_indices
        self.ceil_mode = ceil_mode
        positive_pair(kernel_size, "kernel_size"), positive_pair(self.stride, "stride")
        positive_pair(dilation, "dilation"), pair(padding, "padding")
        self._saved = None

    def _args(self):
        return dict(kernel_size=self.kernel_size, stride=self.stride, padding=self.padding,
                    dilation=self.dilation, ceil_mode=self.ceil_mode)

    def forward(self, input):
        out, indices = F.max_pool2d(input, **self._args(), return_indices=True)
        self._saved = (input, indices)
        return (out, indices) if self.return_indices else out

    def backward(self, grad_output, need_input_grad=True):
        if self._saved is None:
            raise RuntimeError("MaxPool2d.backward called before forward")
        input, indices = self._saved
        self._saved = None
        if not need_input_grad:
            return None
        return F.max_pool2d_backward(grad_output, input, indices, **self._args())

    def output_shape(self, input_shape):
        return _pool_shape(self, input_shape, self.dilation)

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class AvgPool2d(Module):
    """2-D average pooling, as ``torch.nn.AvgPool2d`` (torch's divisor rules)."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                 divisor_override=None):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad
        self.divisor_override = divisor_override
        positive_pair(kernel_size, "kernel_size"), positive_pair(self.stride, "stride"), pair(padding, "padding")
        self._input = None

    def _args(self):
        return dict(kernel_size=self.kernel_size, stride=self.stride, padding=self.padding,
                    ceil_mode=self.ceil_mode, count_include_pad=self.count_include_pad,
                    divisor_override=self.divisor_override)

    def forward(self, input):
        self._input = input
        return F.avg_pool2d(input, **self._args())

    def backward(self, grad_output, need_input_grad=True):
        if self._input is None:
            raise RuntimeError("AvgPool2d.backward called before forward")
        input, self._input = self._input, None
        if not need_input_grad:
            return None
        return F.avg_pool2d_backward(grad_output, input, **self._args())

    def output_shape(self, input_shape):
        return _pool_shape(self, input_shape, 1)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


def _adaptive_size(output_size, input_shape, module):
    if len(input_shape) not in (3, 4):
        raise ValueError(f"input: expected 3 or 4 dimensions, got shape {tuple(input_shape)}")
    size = (output_size, output_size) if not isinstance(output_size, (tuple, list)) else tuple(output_size)
    if len(size) != 2:
        raise ValueError(f"output_size: expected an int or a pair, got {output_size!r}")
    size = tuple(int(d) if s is None else s for s, d in zip(size, input_shape[-2:]))  # None keeps that size
    if input_shape[-1] <= 0 or input_shape[-2] <= 0:
        raise ValueError(f"input: {type(module).__name__} expected non-empty spatial dimensions, got shape "
                         f"{tuple(input_shape)}")
    return size


def _check_output_size(output_size):
    entries = output_size if isinstance(output_size, (tuple, list)) else (output_size,)
    if isinstance(output_size, (tuple, list)) and len(output_size) != 2:
        raise ValueError(f"output_size: expected an int or a pair, got {output_size!r}")
    for v in entries:
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v <= 0):
            raise ValueError(f"output_size: expected positive integers (or None), got {output_size!r}")


def _windows(in_size, out_size):
    """torch's adaptive windows: output i covers [floor(i*in/out), ceil((i+1)*in/out))."""
    return [((i * in_size) // out_size, -(-((i + 1) * in_size) // out_size)) for i in range(out_size)]


class _AdaptivePool2d(Module):
    def __init__(self, output_size):
        super().__init__()
        _check_output_size(output_size)
        self.output_size = output_size
        self._saved = None

    def _plan(self, input):
        """(output size, kernel) where the windows tile the input evenly (kernel = stride = in/out,
        the pooling kernels' case), else (output size, None)."""
        if not isinstance(input, np.ndarray):
            raise TypeError(f"input: expected a NumPy array, got {type(input).__name__}")
        out = _adaptive_size(self.output_size, input.shape, self)
        h, w = input.shape[-2:]
        even = h % out[0] == 0 and w % out[1] == 0
        return out, ((h // out[0], w // out[1]) if even else None)

    def output_shape(self, input_shape):
        return (*tuple(input_shape)[:-2], *_adaptive_size(self.output_size, input_shape, self))

    def extra_repr(self):
        return f"output_size={self.output_size}"


class AdaptiveAvgPool2d(_AdaptivePool2d):
    """Average pooling to a fixed ``output_size`` (int, pair, None entries keep the input's size),
    as ``torch.nn.AdaptiveAvgPool2d``. When the output size divides the input size (global
    pooling, VGG's 7x7 at 224x224) it runs on the average-pooling kernel; otherwise each of
    torch's overlapping windows is averaged in turn."""

    def forward(self, input):
        (oh, ow), kernel = self._plan(input)
        self._saved = (input, oh, ow, kernel)
        if kernel is not None:
            return F.avg_pool2d(input, kernel)
        out = np.empty((*input.shape[:-2], oh, ow), input.dtype)
        for i, (h0, h1) in enumerate(_windows(input.shape[-2], oh)):
            for j, (w0, w1) in enumerate(_windows(input.shape[-1], ow)):
                out[..., i, j] = input[..., h0:h1, w0:w1].mean(axis=(-2, -1))
        return out

    def backward(self, grad_output, need_input_grad=True):
        if self._saved is None:
            raise RuntimeError("AdaptiveAvgPool2d.backward called before forward")
        input, oh, ow, kernel = self._saved
        self._saved = None
        if not need_input_grad:
            return None
        if kernel is not None:
            return F.avg_pool2d_backward(grad_output, input, kernel)
        grad_input = np.zeros(input.shape, grad_output.dtype)
        for i, (h0, h1) in enumerate(_windows(input.shape[-2], oh)):
            for j, (w0, w1) in enumerate(_windows(input.shape[-1], ow)):
                area = (h1 - h0) * (w1 - w0)
                grad_input[..., h0:h1, w0:w1] += (grad_output[..., i, j] / area)[..., None, None]
        return grad_input


class AdaptiveMaxPool2d(_AdaptivePool2d):
    """Max pooling to a fixed ``output_size``, as ``torch.nn.AdaptiveMaxPool2d`` (indices are
    offsets ``h * W + w`` within each plane, as torch's; the first maximum wins ties). When the
    output size divides the input size it runs on the max-pooling kernel."""

    def __init__(self, output_size, return_indices=False):
        super().__init__(output_size)
        self.return_indices = return_indices

    def forward(self, input):
        (oh, ow), kernel = self._plan(input)
        if kernel is not None:
            out, indices = F.max_pool2d(input, kernel, return_indices=True)
        else:
            h, w = input.shape[-2:]
            out = np.empty((*input.shape[:-2], oh, ow), input.dtype)
            indices = np.empty(out.shape, np.int64)
            for i, (h0, h1) in enumerate(_windows(h, oh)):
                for j, (w0, w1) in enumerate(_windows(w, ow)):
                    window = input[..., h0:h1, w0:w1].reshape(*input.shape[:-2], -1)
                    best = np.argmax(window, axis=-1)  # the first maximum, or the first NaN
                    out[..., i, j] = np.take_along_axis(window, best[..., None], -1)[..., 0]
                    indices[..., i, j] = (h0 + best // (w1 - w0)) * w + w0 + best % (w1 - w0)
        self._saved = (input, indices, kernel)
        return (out, indices) if self.return_indices else out

    def backward(self, grad_output, need_input_grad=True):
        if self._saved is None:
            raise RuntimeError("AdaptiveMaxPool2d.backward called before forward")
        input, indices, kernel = self._saved
        self._saved = None
        if not need_input_grad:
            return None
        if kernel is not None:
            return F.max_pool2d_backward(grad_output, input, indices, kernel)
        planes = int(np.prod(input.shape[:-2]))
        grad_input = np.zeros((planes, input.shape[-2] * input.shape[-1]), grad_output.dtype)
        rows = np.repeat(np.arange(planes), indices.shape[-2] * indices.shape[-1])
        np.add.at(grad_input, (rows, indices.reshape(-1)), np.ascontiguousarray(grad_output).reshape(-1))
        return grad_input.reshape(input.shape)

    def extra_repr(self):
        return f"output_size={self.output_size}"
