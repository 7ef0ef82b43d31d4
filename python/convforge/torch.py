"""The PyTorch backend: convforge kernels as torch custom ops, and torch.nn drop-in modules.

``import convforge.torch`` registers the ops under ``torch.ops.convforge`` (torch is an optional
extra: ``pip install "convforge[torch]"``; convforge does not link against libtorch)::

    conv2d(input, weight, bias, stride, padding, dilation, groups)
    conv2d_backward(grad_output, input, weight, stride, padding, dilation, groups, output_mask)
    max_pool2d_with_indices(input, kernel_size, stride, padding, dilation, ceil_mode)
    max_pool2d_backward(grad_output, input, indices, kernel_size, stride, padding, dilation, ceil_mode)
    avg_pool2d(input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)
    avg_pool2d_backward(grad_output, input, kernel_size, stride, padding, ceil_mode,
                        count_include_pad, divisor_override)
    linear(input, weight, bias)
    linear_backward(grad_output, input, weight, output_mask)
    matmul(a, b)

Each has a fake (shape) implementation, so ``torch.compile`` and ``torch.export`` trace through
it, and an autograd formula made of the other ops (the backward ops are differentiable too, so
double backward works). Conv padding is explicit ``(top, bottom, left, right)``; backward ops
return an empty tensor for each gradient their ``output_mask`` leaves out.

Zero-copy: outputs are allocated by torch, and tensors reach the kernels as views of their own
memory (NumPy views on the CPU, ``__cuda_array_interface__`` on CUDA, on torch's current stream).
Memory formats follow torch: on the CPU the kernels read and write channels_last (NHWC) tensors
in place, and an op's outputs are channels_last where torch's would be (conv2d: when the input
or the weight is; pooling: when the input is). An input the kernels cannot read in place (not
dense in the op's layout, e.g. an expanded gradient, or an NCHW input to a conv2d whose weight
is channels_last) is copied once; :data:`contiguous_copies` counts these copies per
``"op:argument"``, and a channels_last chain of conv2d and pooling makes none. The CUDA kernels
read NCHW: there channels_last tensors are copied (counted) and outputs converted back.

The torch-shaped functions :func:`conv2d`, :func:`max_pool2d`, :func:`avg_pool2d`,
:func:`linear` and :func:`matmul` take the same arguments as ``torch.nn.functional``. The modules
:class:`Conv2d`, :class:`MaxPool2d`, :class:`AvgPool2d` and :class:`Linear` subclass their
``torch.nn`` namesakes, and :func:`replace_modules` (alias :func:`use`) swaps them into a model.

The switch, :func:`enabled` (a context manager) or :func:`enable` / :func:`disable`, runs code
that calls ``torch.nn.functional`` itself (Keras on torch, Lightning modules, plain loops) on
these ops without touching the model; see :mod:`convforge._torch_switch`. :data:`dispatched`
counts the calls it ran on convforge, :data:`fallbacks` the calls that ran torch's code instead
(the switch's and the modules'), per ``"op: reason"``.
"""

from __future__ import annotations

import collections
import threading
import warnings
from collections.abc import Sequence
from typing import Optional

import torch
from torch import Tensor, nn

from . import _C
from ._arrays import channels_last as _channels_last
from ._arrays import ops_in_cuda_context as _ops
from ._args import pair, positive_pair
from .functional import _conv_padding

__all__ = [
    "AvgPool2d",
    "Conv2d",
    "ConvforgeFallbackWarning",
    "Linear",
    "MaxPool2d",
    "avg_pool2d",
    "contiguous_copies",
    "conv2d",
    "disable",
    "dispatched",
    "enable",
    "enabled",
    "fallbacks",
    "is_enabled",
    "linear",
    "matmul",
    "max_pool2d",
    "replace_modules",
    "restore_modules",
    "use",
]

#: How many times an op copied an input it could not read in place (or converted an output to
#: the call's memory format), per "op:argument".
contiguous_copies = collections.Counter()
#: Calls the switch (:func:`enabled`) ran on convforge, per op ("conv2d", "max_pool2d", ...).
dispatched = collections.Counter()
#: Calls that ran torch's code because convforge cannot run them, per "op: reason" (the switch
#: and the convforge modules).
fallbacks = collections.Counter()
_counter_lock = threading.Lock()


def _count(counter, key):
    with _counter_lock:  # a Counter's += is a read and a write: concurrent threads would lose counts
        counter[key] += 1


_DTYPES = (torch.float32, torch.float64)
_INFO = _C.info()
_DEVICES = ("cpu", "cuda") if _INFO["cuda_built"] and _INFO.get("cuda_devices", 0) > 0 else ("cpu",)

# ----------------------------------------------------------------------------------------------
# Tensors -> kernel arrays, without copies. `_ops` is the compiled module with each op called on
# the device and current stream of its CUDA arguments (`_C` is the raw module).


def _array(tensor):
    """The kernel-side view of a tensor's memory: no copy."""
    if tensor.device.type == "cpu":
        return tensor.detach().numpy()
    if tensor.device.type == "cuda":
        if "cuda" not in _DEVICES:
            raise TypeError(f"this convforge build has no CUDA kernels or no GPU for {tensor.device} tensors")
        return tensor.detach()  # read through its __cuda_array_interface__
    raise TypeError(f"convforge runs on CPU and CUDA tensors, got a tensor on {tensor.device}")


def _layout(input, *others):
    """(channels_last, nhwc): the memory format of an op's outputs by torch's rule (channels_last
    when the input, or for conv2d the weight, is), and whether the kernels run NHWC in place
    (CPU tensors; the CUDA kernels read NCHW)."""
    cl = _channels_last(input) or any(_channels_last(o) for o in others)
    return cl, cl and input.device.type == "cpu"


def _dense(tensor, op, name, nhwc=False):
    """The tensor itself if the kernels can read it in place (C-contiguous, or with nhwc dense
    channels_last), else one copy in that layout (counted)."""
    memory_format = torch.channels_last if nhwc else torch.contiguous_format
    if tensor.is_contiguous(memory_format=memory_format):
        return tensor
    _count(contiguous_copies, f"{op}:{name}")
    return tensor.contiguous(memory_format=memory_format)


def _in_format(output, cl, nhwc, op, name):
    """An output the CUDA kernels wrote in NCHW, in the call's memory format (counted copy)."""
    if not cl or nhwc or output.numel() == 0:
        return output
    _count(contiguous_copies, f"{op}:{name}")
    return output.contiguous(memory_format=torch.channels_last)


def _rows(tensor, op, name):
    """A 2-D tensor GEMM can read in place (unit stride along rows or columns), else a copy."""
    if tensor.stride(-1) == 1 or tensor.stride(0) == 1 or min(tensor.shape) <= 1:
        return tensor
    _count(contiguous_copies, f"{op}:{name}")
    return tensor.contiguous()


def _empty(like, shape, dtype=None, nhwc=False):
    return torch.empty(shape, dtype=like.dtype if dtype is None else dtype, device=like.device,
                       memory_format=torch.channels_last if nhwc else torch.contiguous_format)


def _no_grad(like):
    """What a backward op returns for a gradient its output_mask leaves out."""
    return like.new_empty((0,))


# ----------------------------------------------------------------------------------------------
# Output sizes (plain integer arithmetic, so the fake kernels work on symbolic shapes too)


def _conv_size(size, kernel, stride, pad_before, pad_after, dilation):
    return (size + pad_before + pad_after - dilation * (kernel - 1) - 1) // stride + 1


def _pool_size(size, kernel, stride, pad, dilation, ceil_mode):
    span = size + 2 * pad - dilation * (kernel - 1) - 1
    out = (span + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + pad:  # the last window must start inside
        out = out - 1
    return out


def _conv_shape(input, weight, stride, padding, dilation):
    return (
        input.shape[0],
        weight.shape[0],
        _conv_size(input.shape[2], weight.shape[2], stride[0], padding[0], padding[1], dilation[0]),
        _conv_size(input.shape[3], weight.shape[3], stride[1], padding[2], padding[3], dilation[1]),
    )


def _pool_shape(input, kernel_size, stride, padding, dilation, ceil_mode):
    return (
        input.shape[0],
        input.shape[1],
        _pool_size(input.shape[2], kernel_size[0], stride[0], padding[0], dilation[0], ceil_mode),
        _pool_size(input.shape[3], kernel_size[1], stride[1], padding[1], dilation[1], ceil_mode),
    )


# ----------------------------------------------------------------------------------------------
# conv2d


@torch.library.custom_op("convforge::conv2d", mutates_args=())
def _conv2d_op(input: Tensor, weight: Tensor, bias: Optional[Tensor], stride: Sequence[int],
               padding: Sequence[int], dilation: Sequence[int], groups: int) -> Tensor:
    cl, nhwc = _layout(input, weight)
    input = _dense(input, "conv2d", "input", nhwc)
    weight = _dense(weight, "conv2d", "weight", nhwc and _channels_last(weight))
    bias = None if bias is None else _dense(bias, "conv2d", "bias")
    output = _empty(input, _conv_shape(input, weight, stride, padding, dilation), nhwc=nhwc)
    _ops.conv2d_forward(_array(input), _array(weight), None if bias is None else _array(bias),
                      _array(output), tuple(stride), tuple(padding), tuple(dilation), groups)
    return _in_format(output, cl, nhwc, "conv2d", "output")


@_conv2d_op.register_fake
def _(input, weight, bias, stride, padding, dilation, groups):
    torch._check(input.dim() == 4, lambda: f"input: expected 4 dimensions, got {input.dim()}")
    cl, _ = _layout(input, weight)
    return _empty(input, _conv_shape(input, weight, stride, padding, dilation), nhwc=cl)


@torch.library.custom_op("convforge::conv2d_backward", mutates_args=())
def _conv2d_backward_op(grad_output: Tensor, input: Tensor, weight: Tensor, stride: Sequence[int],
                        padding: Sequence[int], dilation: Sequence[int], groups: int,
                        output_mask: Sequence[bool]) -> tuple[Tensor, Tensor, Tensor]:
    cl, nhwc = _layout(input, weight)
    weight_cl = _channels_last(weight)
    grad_output = _dense(grad_output, "conv2d_backward", "grad_output", nhwc)
    input = _dense(input, "conv2d_backward", "input", nhwc)
    weight = _dense(weight, "conv2d_backward", "weight", nhwc and weight_cl)
    formats = (nhwc, nhwc and weight_cl, False)
    grads = [_empty(input, shape, nhwc=f) if want else None
             for want, shape, f in zip(output_mask, (input.shape, weight.shape, (weight.shape[0],)), formats)]
    _ops.conv2d_backward(_array(grad_output), _array(input), _array(weight),
                       *(None if g is None else _array(g) for g in grads),
                       tuple(stride), tuple(padding), tuple(dilation), groups)
    grads[0] = grads[0] if grads[0] is None else _in_format(grads[0], cl, nhwc, "conv2d_backward", "grad_input")
    grads[1] = grads[1] if grads[1] is None else _in_format(grads[1], weight_cl, nhwc, "conv2d_backward",
                                                           "grad_weight")
    return tuple(_no_grad(input) if g is None else g for g in grads)


@_conv2d_backward_op.register_fake
def _(grad_output, input, weight, stride, padding, dilation, groups, output_mask):
    cl, _ = _layout(input, weight)
    formats = (cl, _channels_last(weight), False)
    shapes = (input.shape, weight.shape, (weight.shape[0],))
    return tuple(_empty(input, s, nhwc=f) if want else _no_grad(input)
                 for want, s, f in zip(output_mask, shapes, formats))


def _conv2d_setup(ctx, inputs, output):
    input, weight, bias, stride, padding, dilation, groups = inputs
    ctx.save_for_backward(input, weight)
    ctx.args = (stride, padding, dilation, groups)
    ctx.has_bias = bias is not None


def _conv2d_grad(ctx, grad_output):
    input, weight = ctx.saved_tensors
    mask = (ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.has_bias and ctx.needs_input_grad[2])
    if not any(mask):
        return None, None, None, None, None, None, None
    grads = torch.ops.convforge.conv2d_backward(grad_output, input, weight, *ctx.args, mask)
    return *(g if want else None for g, want in zip(grads, mask)), None, None, None, None


_conv2d_op.register_autograd(_conv2d_grad, setup_context=_conv2d_setup)


def _conv2d_backward_setup(ctx, inputs, output):
    grad_output, input, weight, stride, padding, dilation, groups, output_mask = inputs
    ctx.save_for_backward(grad_output, input, weight)
    ctx.args = (stride, padding, dilation, groups)
    ctx.output_mask = tuple(output_mask)


def _conv2d_double_grad(ctx, gg_input, gg_weight, gg_bias):
    # Each gradient is linear in grad_output and in one of (input, weight): differentiate the
    # adjoint identities <gg_input, grad_input> = <conv2d(gg_input, weight), grad_output> and
    # <gg_weight, grad_weight> = <conv2d(input, gg_weight), grad_output>.
    grad_output, input, weight = ctx.saved_tensors
    gg_input, gg_weight, gg_bias = (g if want else None
                                    for g, want in zip((gg_input, gg_weight, gg_bias), ctx.output_mask))
    need_go, need_in, need_w = ctx.needs_input_grad[:3]
    d_grad_output = d_input = d_weight = None
    if need_go:
        if gg_input is not None:
            d_grad_output = torch.ops.convforge.conv2d(gg_input, weight, gg_bias, *ctx.args)
        elif gg_bias is not None:
            d_grad_output = gg_bias[:, None, None].expand_as(grad_output[0]).expand_as(grad_output)
        if gg_weight is not None:
            term = torch.ops.convforge.conv2d(input, gg_weight, None, *ctx.args)
            d_grad_output = term if d_grad_output is None else d_grad_output + term
    if need_w and gg_input is not None:
        d_weight = torch.ops.convforge.conv2d_backward(grad_output, gg_input, weight, *ctx.args,
                                                       (False, True, False))[1]
    if need_in and gg_weight is not None:
        d_input = torch.ops.convforge.conv2d_backward(grad_output, input, gg_weight, *ctx.args,
                                                      (True, False, False))[0]
    return d_grad_output, d_input, d_weight, None, None, None, None, None


_conv2d_backward_op.register_autograd(_conv2d_double_grad, setup_context=_conv2d_backward_setup)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """``torch.nn.functional.conv2d`` on convforge's kernels (differentiable)."""
    stride = positive_pair(stride, "stride")
    dilation = positive_pair(dilation, "dilation")
    pads = _conv_padding(padding, tuple(weight.shape), stride, dilation)
    if input.dim() == 3:
        return torch.ops.convforge.conv2d(input[None], weight, bias, stride, pads, dilation, groups)[0]
    return torch.ops.convforge.conv2d(input, weight, bias, stride, pads, dilation, groups)


# ----------------------------------------------------------------------------------------------
# max_pool2d


@torch.library.custom_op("convforge::max_pool2d_with_indices", mutates_args=())
def _max_pool2d_op(input: Tensor, kernel_size: Sequence[int], stride: Sequence[int],
                   padding: Sequence[int], dilation: Sequence[int],
                   ceil_mode: bool) -> tuple[Tensor, Tensor]:
    cl, nhwc = _layout(input)
    input = _dense(input, "max_pool2d_with_indices", "input", nhwc)
    shape = _pool_shape(input, kernel_size, stride, padding, dilation, ceil_mode)
    output, indices = _empty(input, shape, nhwc=nhwc), _empty(input, shape, torch.int64, nhwc=nhwc)
    _ops.max_pool2d_forward(_array(input), _array(output), _array(indices), tuple(kernel_size),
                          tuple(stride), tuple(padding), tuple(dilation), ceil_mode)
    return (_in_format(output, cl, nhwc, "max_pool2d_with_indices", "output"),
            _in_format(indices, cl, nhwc, "max_pool2d_with_indices", "indices"))


@_max_pool2d_op.register_fake
def _(input, kernel_size, stride, padding, dilation, ceil_mode):
    shape = _pool_shape(input, kernel_size, stride, padding, dilation, ceil_mode)
    cl = _channels_last(input)
    return _empty(input, shape, nhwc=cl), _empty(input, shape, torch.int64, nhwc=cl)


@torch.library.custom_op("convforge::max_pool2d_backward", mutates_args=())
def _max_pool2d_backward_op(grad_output: Tensor, input: Tensor, indices: Tensor,
                            kernel_size: Sequence[int], stride: Sequence[int],
                            padding: Sequence[int], dilation: Sequence[int],
                            ceil_mode: bool) -> Tensor:
    cl, nhwc = _layout(input)
    grad_output = _dense(grad_output, "max_pool2d_backward", "grad_output", nhwc)
    indices = _dense(indices, "max_pool2d_backward", "indices", nhwc)
    grad_input = _empty(input, input.shape, nhwc=nhwc)  # input only supplies the shape and format
    _ops.max_pool2d_backward(_array(grad_output), _array(indices), _array(grad_input),
                           tuple(kernel_size), tuple(stride), tuple(padding), tuple(dilation),
                           ceil_mode)
    return _in_format(grad_input, cl, nhwc, "max_pool2d_backward", "grad_input")


@_max_pool2d_backward_op.register_fake
def _(grad_output, input, indices, kernel_size, stride, padding, dilation, ceil_mode):
    return _empty(input, input.shape, nhwc=_channels_last(input))


def _max_pool2d_setup(ctx, inputs, output):
    input, *args = inputs
    ctx.mark_non_differentiable(output[1])
    ctx.save_for_backward(input, output[1])
    ctx.args = args


def _max_pool2d_grad(ctx, grad_output, _grad_indices):
    input, indices = ctx.saved_tensors
    grad_input = torch.ops.convforge.max_pool2d_backward(grad_output, input, indices, *ctx.args)
    return grad_input, None, None, None, None, None


_max_pool2d_op.register_autograd(_max_pool2d_grad, setup_context=_max_pool2d_setup)


def _max_pool2d_backward_setup(ctx, inputs, output):
    grad_output, input, indices, *_ = inputs
    ctx.save_for_backward(indices)


def _max_pool2d_double_grad(ctx, gg_input):
    # grad_input scatters grad_output to the argmax positions: its adjoint gathers from them.
    (indices,) = ctx.saved_tensors
    d_grad_output = gg_input.flatten(2).gather(2, indices.flatten(2)).view(indices.shape)
    return d_grad_output, None, None, None, None, None, None, None


_max_pool2d_backward_op.register_autograd(_max_pool2d_double_grad, setup_context=_max_pool2d_backward_setup)


def _pool_args(kernel_size, stride, padding):
    kernel = positive_pair(kernel_size, "kernel_size")
    if stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0):
        stride = kernel
    return kernel, positive_pair(stride, "stride"), pair(padding, "padding")


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """``torch.nn.functional.max_pool2d`` on convforge's kernels (differentiable)."""
    kernel, stride, padding = _pool_args(kernel_size, stride, padding)
    args = (kernel, stride, padding, positive_pair(dilation, "dilation"), bool(ceil_mode))
    if input.dim() == 3:
        output, indices = (t[0] for t in torch.ops.convforge.max_pool2d_with_indices(input[None], *args))
    else:
        output, indices = torch.ops.convforge.max_pool2d_with_indices(input, *args)
    return (output, indices) if return_indices else output


# ----------------------------------------------------------------------------------------------
# avg_pool2d


@torch.library.custom_op("convforge::avg_pool2d", mutates_args=())
def _avg_pool2d_op(input: Tensor, kernel_size: Sequence[int], stride: Sequence[int],
                   padding: Sequence[int], ceil_mode: bool, count_include_pad: bool,
                   divisor_override: Optional[int]) -> Tensor:
    cl, nhwc = _layout(input)
    input = _dense(input, "avg_pool2d", "input", nhwc)
    output = _empty(input, _pool_shape(input, kernel_size, stride, padding, (1, 1), ceil_mode), nhwc=nhwc)
    _ops.avg_pool2d_forward(_array(input), _array(output), tuple(kernel_size), tuple(stride),
                          tuple(padding), ceil_mode, count_include_pad, divisor_override)
    return _in_format(output, cl, nhwc, "avg_pool2d", "output")


@_avg_pool2d_op.register_fake
def _(input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
    return _empty(input, _pool_shape(input, kernel_size, stride, padding, (1, 1), ceil_mode),
                  nhwc=_channels_last(input))


@torch.library.custom_op("convforge::avg_pool2d_backward", mutates_args=())
def _avg_pool2d_backward_op(grad_output: Tensor, input: Tensor, kernel_size: Sequence[int],
                            stride: Sequence[int], padding: Sequence[int], ceil_mode: bool,
                            count_include_pad: bool, divisor_override: Optional[int]) -> Tensor:
    cl, nhwc = _layout(input)
    grad_output = _dense(grad_output, "avg_pool2d_backward", "grad_output", nhwc)
    grad_input = _empty(input, input.shape, nhwc=nhwc)  # input only supplies the shape and format
    _ops.avg_pool2d_backward(_array(grad_output), _array(grad_input), tuple(kernel_size),
                           tuple(stride), tuple(padding), ceil_mode, count_include_pad,
                           divisor_override)
    return _in_format(grad_input, cl, nhwc, "avg_pool2d_backward", "grad_input")


@_avg_pool2d_backward_op.register_fake
def _(grad_output, input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
    return _empty(input, input.shape, nhwc=_channels_last(input))


def _avg_pool2d_setup(ctx, inputs, output):
    input, *args = inputs
    ctx.save_for_backward(input)  # for its shape; pooling's input is kept alive by its producer anyway
    ctx.args = args


def _avg_pool2d_grad(ctx, grad_output):
    (input,) = ctx.saved_tensors
    return torch.ops.convforge.avg_pool2d_backward(grad_output, input, *ctx.args), None, None, None, None, None, None


_avg_pool2d_op.register_autograd(_avg_pool2d_grad, setup_context=_avg_pool2d_setup)


def _avg_pool2d_backward_setup(ctx, inputs, output):
    ctx.args = inputs[2:]


def _avg_pool2d_double_grad(ctx, gg_input):
    # grad_input is linear in grad_output and its adjoint is the forward pooling.
    return torch.ops.convforge.avg_pool2d(gg_input, *ctx.args), None, None, None, None, None, None, None


_avg_pool2d_backward_op.register_autograd(_avg_pool2d_double_grad, setup_context=_avg_pool2d_backward_setup)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """``torch.nn.functional.avg_pool2d`` on convforge's kernels (differentiable)."""
    kernel, stride, padding = _pool_args(kernel_size, stride, padding)
    args = (kernel, stride, padding, bool(ceil_mode), bool(count_include_pad), divisor_override)
    if input.dim() == 3:
        return torch.ops.convforge.avg_pool2d(input[None], *args)[0]
    return torch.ops.convforge.avg_pool2d(input, *args)


# ----------------------------------------------------------------------------------------------
# linear and matmul (GEMM)


def _gemm(a, b, out, *, c=None, beta=0.0, trans_a=False, trans_b=False):
    if out.numel() == 0:
        return
    _ops.gemm(_array(a), _array(b), None if c is None else _array(c), _array(out), 1.0, beta,
            trans_a, trans_b)


@torch.library.custom_op("convforge::linear", mutates_args=())
def _linear_op(input: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
    rows = _rows(input.flatten(0, -2), "linear", "input")
    weight = _rows(weight, "linear", "weight")
    output = _empty(rows, (rows.shape[0], weight.shape[0]))
    if bias is None:
        _gemm(rows, weight, output, trans_b=True)
    else:  # start from the broadcast bias: output = rows @ weight.T + output
        output.copy_(bias.expand_as(output))
        _gemm(rows, weight, output, c=output, beta=1.0, trans_b=True)
    return output.view(*input.shape[:-1], weight.shape[0])


@_linear_op.register_fake
def _(input, weight, bias):
    return input.new_empty((*input.shape[:-1], weight.shape[0]))


@torch.library.custom_op("convforge::linear_backward", mutates_args=())
def _linear_backward_op(grad_output: Tensor, input: Tensor, weight: Tensor,
                        output_mask: Sequence[bool]) -> tuple[Tensor, Tensor, Tensor]:
    op = "linear_backward"
    grad_rows = _rows(grad_output.flatten(0, -2), op, "grad_output")
    grad_input, grad_weight, grad_bias = (_no_grad(input) for _ in range(3))
    if output_mask[0]:  # grad_output @ weight
        grad_input = _empty(input, (grad_rows.shape[0], weight.shape[1]))
        _gemm(grad_rows, _rows(weight, op, "weight"), grad_input)
        grad_input = grad_input.view(input.shape)
    if output_mask[1]:  # grad_output.T @ input
        grad_weight = _empty(input, weight.shape)
        _gemm(grad_rows, _rows(input.flatten(0, -2), op, "input"), grad_weight, trans_a=True)
    if output_mask[2]:
        grad_bias = torch.sum(grad_rows, 0)
    return grad_input, grad_weight, grad_bias


@_linear_backward_op.register_fake
def _(grad_output, input, weight, output_mask):
    shapes = (input.shape, weight.shape, (weight.shape[0],))
    return tuple(input.new_empty(s) if want else _no_grad(input) for want, s in zip(output_mask, shapes))


def _linear_setup(ctx, inputs, output):
    input, weight, bias = inputs
    ctx.save_for_backward(input, weight)
    ctx.has_bias = bias is not None


def _linear_grad(ctx, grad_output):
    input, weight = ctx.saved_tensors
    mask = (ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.has_bias and ctx.needs_input_grad[2])
    if not any(mask):
        return None, None, None
    grads = torch.ops.convforge.linear_backward(grad_output, input, weight, mask)
    return tuple(g if want else None for g, want in zip(grads, mask))


_linear_op.register_autograd(_linear_grad, setup_context=_linear_setup)


def _linear_backward_setup(ctx, inputs, output):
    grad_output, input, weight, output_mask = inputs
    ctx.save_for_backward(grad_output, input, weight)
    ctx.output_mask = tuple(output_mask)


def _linear_double_grad(ctx, gg_input, gg_weight, gg_bias):
    # The same adjoint identities as conv2d's: <gg_input, grad_output @ weight> and
    # <gg_weight, grad_output.T @ input>, differentiated.
    grad_output, input, weight = ctx.saved_tensors
    gg_input, gg_weight, gg_bias = (g if want else None
                                    for g, want in zip((gg_input, gg_weight, gg_bias), ctx.output_mask))
    need_go, need_in, need_w = ctx.needs_input_grad[:3]
    d_grad_output = d_input = d_weight = None
    if need_go:
        if gg_input is not None:
            d_grad_output = torch.ops.convforge.linear(gg_input, weight, gg_bias)
        elif gg_bias is not None:
            d_grad_output = gg_bias.expand_as(grad_output)
        if gg_weight is not None:
            term = torch.ops.convforge.linear(input, gg_weight, None)
            d_grad_output = term if d_grad_output is None else d_grad_output + term
    if need_w and gg_input is not None:
        d_weight = torch.ops.convforge.linear_backward(grad_output, gg_input, weight, (False, True, False))[1]
    if need_in and gg_weight is not None:
        d_input = torch.ops.convforge.linear_backward(grad_output, input, gg_weight, (True, False, False))[0]
    return d_grad_output, d_input, d_weight, None


_linear_backward_op.register_autograd(_linear_double_grad, setup_context=_linear_backward_setup)


def linear(input, weight, bias=None):
    """``torch.nn.functional.linear`` (``input @ weight.T + bias``) on convforge's GEMM."""
    if input.dim() == 1:
        return torch.ops.convforge.linear(input[None], weight, bias)[0]
    return torch.ops.convforge.linear(input, weight, bias)


def _matmul_shape(a, b):
    torch._check(a.dim() in (2, 3) and b.dim() in (2, 3) and not (a.dim() == 2 and b.dim() == 3),
                 lambda: f"matmul: expected a 2-D or (batch, m, k) a and a 2-D or (batch, k, n) b, "
                         f"got shapes {tuple(a.shape)} and {tuple(b.shape)}")
    return (*a.shape[:-1], b.shape[-1])


@torch.library.custom_op("convforge::matmul", mutates_args=())
def _matmul_op(a: Tensor, b: Tensor) -> Tensor:
    output = _empty(a, _matmul_shape(a, b))
    if b.dim() == 2:  # one product, a's batch folded into its rows
        _gemm(_rows(a.flatten(0, -2), "matmul", "a"), _rows(b, "matmul", "b"),
              output.flatten(0, -2))
    else:
        for i in range(a.shape[0]):
            _gemm(_rows(a[i], "matmul", "a"), _rows(b[i], "matmul", "b"), output[i])
    return output


@_matmul_op.register_fake
def _(a, b):
    return a.new_empty(_matmul_shape(a, b))


def _matmul_setup(ctx, inputs, output):
    ctx.save_for_backward(*inputs)


def _matmul_grad(ctx, grad_output):
    a, b = ctx.saved_tensors
    grad_a = grad_b = None
    if ctx.needs_input_grad[0]:
        grad_a = torch.ops.convforge.matmul(grad_output, b.mT)
    if ctx.needs_input_grad[1]:
        if b.dim() == 2:  # sum over the batch: fold it into the reduction
            grad_b = torch.ops.convforge.matmul(a.flatten(0, -2).mT,
                                                grad_output.flatten(0, -2))
        else:
            grad_b = torch.ops.convforge.matmul(a.mT, grad_output)
    return grad_a, grad_b


_matmul_op.register_autograd(_matmul_grad, setup_context=_matmul_setup)


def matmul(a, b):
    """``a @ b`` on convforge's GEMM, for 2-D ``a`` and ``b``, or a batch: ``a`` (batch, m, k)
    with ``b`` (k, n) or (batch, k, n). Differentiable."""
    return torch.ops.convforge.matmul(a, b)


# ----------------------------------------------------------------------------------------------
# Modules


class ConvforgeFallbackWarning(UserWarning):
    """A convforge module ran torch's own implementation for a setting convforge does not support."""


class _Backend:
    """Mixin for the convforge modules: decide per call whether convforge can run it.

    ``convforge_fallback`` is ``None`` while every call ran on convforge; after a call that had to
    run on torch it holds the reason (e.g. ``"padding_mode='reflect'"``), and a
    :class:`ConvforgeFallbackWarning` is issued once per module and reason.
    """

    convforge_fallback = None

    def _unsupported(self, input):
        dtypes = {input.dtype} | {p.dtype for p in self.parameters(recurse=False)}
        if not dtypes <= set(_DTYPES):
            return f"dtype {', '.join(sorted(str(d).replace('torch.', '') for d in dtypes))} (convforge runs float32 and float64)"
        if len(dtypes) > 1:
            return "mixed dtypes"
        devices = {input.device.type} | {p.device.type for p in self.parameters(recurse=False)}
        if not devices <= set(_DEVICES) or len(devices) > 1:
            return f"device {', '.join(sorted(devices))} (this convforge build runs on {', '.join(_DEVICES)})"
        return None

    def _fall_back(self, reason, input):
        self.convforge_fallback = reason
        _count(fallbacks, f"{type(self).__name__}: {reason}")
        warned = self.__dict__.setdefault("_convforge_warned", set())
        if reason not in warned:
            warned.add(reason)
            warnings.warn(f"convforge {type(self).__name__}: {reason} is not supported, running "
                          f"torch's implementation", ConvforgeFallbackWarning, stacklevel=3)
        return self._torch_class.forward(self, input)


class Conv2d(_Backend, nn.Conv2d):
    """``torch.nn.Conv2d`` running on convforge's kernels; same parameters, state_dict and repr.
    Falls back to torch for ``padding_mode`` other than ``'zeros'`` and unsupported dtypes/devices."""

    _torch_class = nn.Conv2d

    def forward(self, input):
        reason = self._unsupported(input)
        if reason is None and self.padding_mode != "zeros":
            reason = f"padding_mode={self.padding_mode!r}"
        if reason is not None:
            return self._fall_back(reason, input)
        return conv2d(input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class MaxPool2d(_Backend, nn.MaxPool2d):
    """``torch.nn.MaxPool2d`` running on convforge's kernels (``return_indices`` included)."""

    _torch_class = nn.MaxPool2d

    def forward(self, input):
        reason = self._unsupported(input)
        if reason is not None:
            return self._fall_back(reason, input)
        return max_pool2d(input, self.kernel_size, self.stride, self.padding, self.dilation,
                          self.ceil_mode, self.return_indices)


class AvgPool2d(_Backend, nn.AvgPool2d):
    """``torch.nn.AvgPool2d`` running on convforge's kernels."""

    _torch_class = nn.AvgPool2d

    def forward(self, input):
        reason = self._unsupported(input)
        if reason is not None:
            return self._fall_back(reason, input)
        return avg_pool2d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                          self.count_include_pad, self.divisor_override)


class Linear(_Backend, nn.Linear):
    """``torch.nn.Linear`` running on convforge's GEMM."""

    _torch_class = nn.Linear

    def forward(self, input):
        reason = self._unsupported(input)
        if reason is None and input.dim() == 0:
            reason = "a 0-dimensional input"
        if reason is not None:
            return self._fall_back(reason, input)
        return linear(input, self.weight, self.bias)


_SWAPS = {cls._torch_class: cls for cls in (Conv2d, MaxPool2d, AvgPool2d, Linear)}


def replace_modules(model):
    """Run ``model``'s ``nn.Conv2d``, ``nn.MaxPool2d``, ``nn.AvgPool2d`` and ``nn.Linear`` layers
    on convforge, in place; returns ``model``.

    Each such module (the exact torch class, not a user subclass with its own forward) becomes an
    instance of the convforge subclass by a change of class: the module object, its Parameter
    objects, buffers and hooks stay the same, so an optimizer built earlier keeps working and
    ``state_dict`` is unchanged. :func:`restore_modules` undoes it.
    """
    for module in model.modules():
        swap = _SWAPS.get(type(module))
        if swap is not None:
            module.__class__ = swap
    return model


use = replace_modules


def restore_modules(model):
    """Undo :func:`replace_modules`: the convforge modules in ``model`` become torch's again."""
    for module in model.modules():
        if type(module) in _SWAPS.values():
            module.__class__ = module._torch_class
            module.__dict__.pop("convforge_fallback", None)
            module.__dict__.pop("_convforge_warned", None)
    return model


# The switch lives in its own module; it runs on the functions above.
from ._torch_switch import disable, enable, enabled, is_enabled  # noqa: E402
