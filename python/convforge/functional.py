"""The functional API, shaped like torch.nn.functional: argument names, defaults and semantics
follow torch. Outputs are allocated here, in the caller's array library; the checks on arrays
(dtype, shape, overlap, writability) are made once, in the compiled binding."""

import numpy as np

from . import _C
from ._args import pair, positive_pair
from ._arrays import as_input, channels_last, check_array, empty, reads_nhwc, staging_off, to_channels_last
# The compiled ops, run on the caller's GPU device and current stream for GPU arrays (convforge._C
# is the raw module, used for host-side queries: this wrapper sets the CUDA context first).
from ._arrays import ops_in_cuda_context as _ops

# ----------------------------------------------------------------------------------------------
# GEMM

_ndarray, _np_empty = np.ndarray, np.empty  # module-level names: one lookup each per call


def gemm(a, b, c=None, *, alpha=1.0, beta=0.0, trans_a=False, trans_b=False, out=None):
    """``alpha * op(a) @ op(b) + beta * c`` for 2-D float32/float64 arrays.

    ``op(x)`` is ``x.T`` when the matching ``trans_*`` flag is set. ``a`` and ``b`` may have any
    row stride (and column-major views are used as they are); ``c`` defaults to zeros. The result
    is written to ``out`` when given (it may be ``c`` itself), else to a new array.
    """
    # Small products are dominated by this function's cost: NumPy arrays take a short path with
    # the same checks (the binding checks everything else: dtypes, strides, out, c).
    host = type(a) is _ndarray and type(b) is _ndarray
    if not host:
        check_array(a, "a")
        check_array(b, "b")
    a_shape, b_shape = a.shape, b.shape
    if len(a_shape) != 2 or len(b_shape) != 2:
        name, x = ("a", a) if a.ndim != 2 else ("b", b)
        raise ValueError(f"{name}: expected 2 dimensions, got {x.ndim} (shape {x.shape})")
    m = a_shape[1] if trans_a else a_shape[0]
    n = b_shape[0] if trans_b else b_shape[1]
    if out is None:
        out = _np_empty((m, n), a.dtype) if host else empty(a, (m, n))
    if c is not None and beta != 0 and c is not out and not host:
        out[...] = c  # GPU arrays: start from c on the device, like the binding does on the host
        c = out
    # NumPy operands go straight to the binding (the CUDA-context wrapper would only add its cost).
    op = _C.gemm if host and staging_off() else _ops.gemm
    op(a, b, c, out, float(alpha), float(beta), bool(trans_a), bool(trans_b))
    return out


def matmul(a, b, out=None):
    """``a @ b`` for 2-D arrays, or a batch: ``a`` (batch, m, k) with ``b`` (k, n) or (batch, k, n)."""
    for name, x in (("a", a), ("b", b)):
        check_array(x, name)
    if a.ndim == 2 and b.ndim == 2:
        return gemm(a, b, out=out)
    if a.ndim != 3 or b.ndim not in (2, 3):
        raise ValueError(
            f"matmul: expected a 2-D or (batch, m, k) array a and a 2-D or (batch, k, n) array b, "
            f"got shapes {a.shape} and {b.shape}"
        )
    if b.ndim == 3 and b.shape[0] != a.shape[0]:
        raise ValueError(f"b: expected a batch of {a.shape[0]} like a, got {b.shape[0]}")
    if b.ndim == 2:  # one product with the batch folded into the rows
        rows = as_input(a, "a").reshape(-1, a.shape[2])
        result = gemm(rows, b, out=None if out is None else out.reshape(-1, b.shape[1]))
        return result.reshape(a.shape[0], a.shape[1], b.shape[1]) if out is None else out
    if out is None:
        out = empty(a, (a.shape[0], a.shape[1], b.shape[2]))
    for i in range(a.shape[0]):
        gemm(a[i], b[i], out=out[i])
    return out


# ----------------------------------------------------------------------------------------------
# conv2d


def _conv_padding(padding, weight_shape, stride, dilation):
    """torch's padding argument -> (top, bottom, left, right)."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0, 0, 0)
        if padding != "same":
            raise ValueError(f"padding: expected 'valid', 'same', an int or a pair, got {padding!r}")
        if stride != (1, 1):
            raise ValueError(f"padding='same' is not supported for strided convolutions, got stride={stride}")
        pads = []
        for k, d in zip(weight_shape[2:], dilation):
            total = d * (k - 1)  # torch puts the odd extra pixel at the bottom/right
            pads += [total // 2, total - total // 2]
        return tuple(pads)
    ph, pw = pair(padding, "padding")
    return (ph, ph, pw, pw)


def _batched(x, name, ndim=4):
    """(input, was_unbatched): torch accepts an unbatched (C, H, W) input."""
    check_array(x, name)
    if x.ndim == ndim - 1:
        return x[None], True
    if x.ndim != ndim:
        raise ValueError(f"{name}: expected {ndim - 1} or {ndim} dimensions, got {x.ndim} (shape {x.shape})")
    return x, False


def _conv_args(weight, stride, padding, dilation, groups):
    """Parses the torch-style arguments; their values are checked in one place, the compiled
    conv2d_check."""
    stride = pair(stride, "stride")
    dilation = pair(dilation, "dilation")
    if weight.ndim != 4:
        raise ValueError(f"weight: expected 4 dimensions, got {weight.ndim} (shape {weight.shape})")
    if not isinstance(groups, (int, np.integer)) or isinstance(groups, bool):
        raise TypeError(f"groups: expected an integer, got {groups!r}")
    return stride, _conv_padding(padding, weight.shape, stride, dilation), dilation, int(groups)


def _algorithm(algorithm):
    if not isinstance(algorithm, str):
        raise TypeError(f"algorithm: expected a string, got {type(algorithm).__name__}")
    return algorithm


def _layout(x, *others):
    """(channels_last, nhwc): the memory format of the outputs by torch's rule (channels_last when
    the input, or for conv2d the weight, is), and whether the kernels read and write NHWC in
    place here (else they run on NCHW copies and the outputs are converted)."""
    cl = channels_last(x) or any(channels_last(o) for o in others)
    return cl, cl and reads_nhwc(x)


def _in_format(out, cl, nhwc):
    """An output computed in NCHW in the memory format of the call (channels_last: a copy)."""
    return to_channels_last(out) if cl and not nhwc and out is not None else out


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *, algorithm="auto"):
    """2-D convolution (cross-correlation) over an NCHW or unbatched CHW input, as
    ``torch.nn.functional.conv2d``: weight is (C_out, C_in / groups, kH, kW); padding is an int,
    a pair, ``'valid'`` or ``'same'``. ``algorithm`` forces one of the CPU algorithms of
    :func:`conv2d_algorithms` (``'auto'``: the chooser decides, see :func:`conv2d_algorithm`).

    Memory format follows torch: the output is channels_last (NHWC memory, e.g. an NHWC array
    viewed as ``x_nhwc.transpose(0, 3, 1, 2)``) when the input or the weight is, else
    C-contiguous. The CPU kernels read and write NHWC arrays in place; a weight in the other
    layout is converted internally."""
    x, unbatched = _batched(input, "input")
    check_array(weight, "weight")
    cl, nhwc = _layout(x, weight)
    x = as_input(x, "input", nhwc)
    weight = as_input(weight, "weight", nhwc and channels_last(weight))
    bias = None if bias is None else as_input(bias, "bias")
    stride, pads, dilation, groups = _conv_args(weight, stride, padding, dilation, groups)
    oh, ow = _C.conv2d_output_size(x.shape[2], x.shape[3], weight.shape[2:], stride, pads, dilation)
    out = empty(x, (x.shape[0], weight.shape[0], max(oh, 0), max(ow, 0)), channels_last=nhwc)
    _ops.conv2d_forward(x, weight, bias, out, stride, pads, dilation, groups, _algorithm(algorithm))
    out = _in_format(out, cl, nhwc)
    return out[0] if unbatched else out


def conv2d_backward(grad_output, input, weight, stride=1, padding=0, dilation=1, groups=1,
                    output_mask=(True, True, True), *, algorithm="auto"):
    """Gradients of :func:`conv2d`: ``(grad_input, grad_weight, grad_bias)``. Only the entries
    that ``output_mask`` asks for are computed; the others are ``None``. Deterministic.
    ``algorithm`` forces one CPU algorithm for each gradient computed (it must apply to each).
    grad_input is in the memory format of the forward's output, grad_weight in the weight's."""
    x, unbatched = _batched(input, "input")
    check_array(weight, "weight")
    check_array(grad_output, "grad_output")
    if unbatched:
        grad_output = grad_output[None]
    cl, nhwc = _layout(x, weight)
    weight_cl = channels_last(weight)
    x = as_input(x, "input", nhwc)
    grad_output = as_input(grad_output, "grad_output", nhwc)
    weight = as_input(weight, "weight", nhwc and weight_cl)
    stride, pads, dilation, groups = _conv_args(weight, stride, padding, dilation, groups)
    want_input, want_weight, want_bias = (bool(m) for m in output_mask)
    grad_input = empty(x, x.shape, channels_last=nhwc) if want_input else None
    grad_weight = empty(x, weight.shape, channels_last=nhwc and weight_cl) if want_weight else None
    grad_bias = empty(x, (weight.shape[0],)) if want_bias else None
    _ops.conv2d_backward(grad_output, x, weight, grad_input, grad_weight, grad_bias,
                         stride, pads, dilation, groups, _algorithm(algorithm))
    grad_input = _in_format(grad_input, cl, nhwc)
    grad_weight = _in_format(grad_weight, weight_cl, nhwc)
    if unbatched and grad_input is not None:
        grad_input = grad_input[0]
    return grad_input, grad_weight, grad_bias


_PASSES = {"forward": 0, "grad_input": 1, "grad_weight": 2}


def conv2d_algorithms():
    """The CPU conv2d algorithms, in the chooser's list: ``{name: what a problem needs for it}``."""
    return dict(_C.conv2d_algorithms())


def conv2d_algorithm(input_shape, weight_shape, stride=1, padding=0, dilation=1, groups=1,
                     pass_="forward", dtype=np.float32, algorithm="auto", channels_last=False):
    """The name of the CPU algorithm that :func:`conv2d` (``pass_='forward'``) or
    :func:`conv2d_backward` (``'grad_input'``, ``'grad_weight'``) runs for this problem, on NCHW
    arrays or with ``channels_last`` on NHWC ones. A grad_input named after a forward-only
    algorithm runs as the forward convolution of grad_output with the flipped weight (stride 1).
    Raises ValueError where a forced ``algorithm`` does not apply."""
    if pass_ not in _PASSES:
        raise ValueError(f"pass_: expected one of {', '.join(_PASSES)}, got {pass_!r}")
    dtype = np.dtype(dtype)
    # Arrays of the given shapes that are never touched (the chooser looks at shapes only).
    x, _ = _batched(np.empty(tuple(input_shape), dtype), "input")
    weight = np.empty(tuple(weight_shape), dtype)
    stride, pads, dilation, groups = _conv_args(weight, stride, padding, dilation, groups)
    return _C.conv2d_chosen_algorithm(x, weight, stride, pads, dilation, groups, _PASSES[pass_],
                                      _algorithm(algorithm), bool(channels_last))


def set_winograd_enabled(enabled):
    """Whether ``algorithm='auto'`` may choose Winograd (process-wide; initially on unless the
    environment sets ``CONVFORGE_WINOGRAD=0``). Off, every convolution sums its products
    directly, as the other algorithms do; a forced ``algorithm='winograd_f4x3'`` still runs."""
    _C.set_conv2d_winograd_enabled(bool(enabled))


def winograd_enabled():
    """See :func:`set_winograd_enabled`."""
    return _C.conv2d_winograd_enabled()


# ----------------------------------------------------------------------------------------------
# Pooling


def _pool_args(kernel_size, stride, padding):
    kernel = positive_pair(kernel_size, "kernel_size")
    stride = kernel if stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0) else positive_pair(stride, "stride")
    return kernel, stride, pair(padding, "padding")


def _pool_output(x, kernel, stride, padding, dilation, ceil_mode):
    oh, ow = _C.pool2d_output_size(x.shape[2], x.shape[3], kernel, stride, padding, dilation, bool(ceil_mode))
    return (x.shape[0], x.shape[1], max(oh, 0), max(ow, 0))


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """2-D max pooling as ``torch.nn.functional.max_pool2d``: NaN propagates (the last NaN of a
    window gives the index), the first maximum wins ties, and indices are int64 offsets
    ``h * W + w`` within each plane. ``padding`` may be at most half of ``kernel_size`` (torch's
    rule for ``max_pool2d_with_indices``, which autograd uses).

    Memory format follows torch: the output and the indices are channels_last (NHWC memory, e.g.
    an NHWC array viewed as ``x_nhwc.transpose(0, 3, 1, 2)``) when the input is, else
    C-contiguous. The CPU kernels read and write NHWC arrays in place."""
    x, unbatched = _batched(input, "input")
    cl, nhwc = _layout(x)
    x = as_input(x, "input", nhwc)
    kernel, stride, padding = _pool_args(kernel_size, stride, padding)
    dilation = positive_pair(dilation, "dilation")
    shape = _pool_output(x, kernel, stride, padding, dilation, ceil_mode)
    out = empty(x, shape, channels_last=nhwc)
    indices = empty(x, shape, np.int64, channels_last=nhwc) if return_indices else None
    _ops.max_pool2d_forward(x, out, indices, kernel, stride, padding, dilation, bool(ceil_mode))
    out, indices = _in_format(out, cl, nhwc), _in_format(indices, cl, nhwc)
    if unbatched:
        out = out[0]
        indices = None if indices is None else indices[0]
    return (out, indices) if return_indices else out


def max_pool2d_backward(grad_output, input, indices, kernel_size, stride=None, padding=0,
                        dilation=1, ceil_mode=False):
    """Gradient of :func:`max_pool2d` with respect to its input.

    ``max_pool2d_backward(grad_output, input, indices, kernel_size, stride=None, padding=0,
    dilation=1, ceil_mode=False) -> grad_input``, the counterpart of torch's
    ``torch.ops.aten.max_pool2d_with_indices_backward(grad_output, input, kernel_size, stride,
    padding, dilation, ceil_mode, indices)``. ``grad_output`` and ``indices`` (int64, as returned
    by ``max_pool2d(..., return_indices=True)``) have the output's shape; ``input`` (batched or
    unbatched) supplies the shape and dtype of ``grad_input``, its values are not read. Each
    ``grad_output`` element is added at the position its index names, whichever position of its
    plane that is; an index outside ``[0, H * W)`` raises ``ValueError``. Deterministic: sums run
    in output order, as torch's do. ``grad_input`` is channels_last when ``input`` is (torch's
    rule); ``grad_output`` and ``indices`` in the other layout are converted.
    """
    x, unbatched = _batched(input, "input")
    check_array(grad_output, "grad_output")
    check_array(indices, "indices")
    if indices.dtype != np.int64:
        raise TypeError(f"indices: expected dtype int64, got {indices.dtype}")
    if unbatched:
        grad_output, indices = grad_output[None], indices[None]
    cl, nhwc = _layout(x)
    grad_output = as_input(grad_output, "grad_output", nhwc)
    indices = as_input(indices, "indices", nhwc)
    kernel, stride, padding = _pool_args(kernel_size, stride, padding)
    dilation = positive_pair(dilation, "dilation")
    grad_input = empty(x, x.shape, channels_last=nhwc)
    _ops.max_pool2d_backward(grad_output, indices, grad_input, kernel, stride, padding, dilation, bool(ceil_mode))
    grad_input = _in_format(grad_input, cl, nhwc)
    return grad_input[0] if unbatched else grad_input


def _divisor(divisor_override):
    if divisor_override is None:
        return None
    if not isinstance(divisor_override, (int, np.integer)) or isinstance(divisor_override, bool) or divisor_override <= 0:
        raise ValueError(f"divisor_override: expected a positive integer, got {divisor_override!r}")
    return int(divisor_override)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """2-D average pooling as ``torch.nn.functional.avg_pool2d``, with torch's divisor rules.
    The output is channels_last when the input is (torch's rule, as for :func:`max_pool2d`)."""
    x, unbatched = _batched(input, "input")
    cl, nhwc = _layout(x)
    x = as_input(x, "input", nhwc)
    kernel, stride, padding = _pool_args(kernel_size, stride, padding)
    out = empty(x, _pool_output(x, kernel, stride, padding, (1, 1), ceil_mode), channels_last=nhwc)
    _ops.avg_pool2d_forward(x, out, kernel, stride, padding, bool(ceil_mode), bool(count_include_pad),
                          _divisor(divisor_override))
    out = _in_format(out, cl, nhwc)
    return out[0] if unbatched else out


def avg_pool2d_backward(grad_output, input, kernel_size, stride=None, padding=0, ceil_mode=False,
                        count_include_pad=True, divisor_override=None):
    """Gradient of :func:`avg_pool2d` with respect to its input.

    ``avg_pool2d_backward(grad_output, input, kernel_size, stride=None, padding=0,
    ceil_mode=False, count_include_pad=True, divisor_override=None) -> grad_input``, with the
    arguments of ``torch.ops.aten.avg_pool2d_backward``: every ``grad_output`` element divided by
    its window's divisor is added to each input position of its window. ``grad_output`` has the
    output's shape; ``input`` (batched or unbatched) supplies the shape and dtype of
    ``grad_input``, its values are not read. Deterministic. ``grad_input`` is channels_last
    when ``input`` is (torch's rule); a ``grad_output`` in the other layout is converted.
    """
    x, unbatched = _batched(input, "input")
    check_array(grad_output, "grad_output")
    if unbatched:
        grad_output = grad_output[None]
    cl, nhwc = _layout(x)
    grad_output = as_input(grad_output, "grad_output", nhwc)
    kernel, stride, padding = _pool_args(kernel_size, stride, padding)
    grad_input = empty(x, x.shape, channels_last=nhwc)
    _ops.avg_pool2d_backward(grad_output, grad_input, kernel, stride, padding, bool(ceil_mode),
                           bool(count_include_pad), _divisor(divisor_override))
    grad_input = _in_format(grad_input, cl, nhwc)
    return grad_input[0] if unbatched else grad_input
