"""MaxPool2d and AvgPool2d on convforge's pooling kernels."""

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
