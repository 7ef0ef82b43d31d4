"""Reference max and average pooling and their gradients: plain NumPy, float64, one window
offset at a time, with torch's semantics written out step by step.

- Output size per axis: ``floor((in + 2 * pad - dilation * (k - 1) - 1) / stride) + 1``, or with
  ``ceil`` in ceil_mode, where the last window must then start inside the input or the left
  padding (never in the right padding).
- Max: windows scan row-major; a value replaces the running maximum when it is greater or NaN,
  so the first maximum wins ties and the last NaN of a window wins. The running maximum starts
  at -inf with the index of the window's first in-bounds position, so an all -inf window
  returns that position. Indices are int64 offsets ``h * W + w`` within each (H, W) plane.
- Average: the sum of the in-bounds values divided by ``divisor_override`` if given, else by the
  window's size clipped to the padded input (``count_include_pad=True``) or to the input itself.
"""

import math

import numpy as np

from .._args import pair, positive_pair


def _output_size(size, kernel, stride, pad, dilation, ceil_mode):
    span = size + 2 * pad - dilation * (kernel - 1) - 1
    out = (math.ceil(span / stride) if ceil_mode else math.floor(span / stride)) + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def _batched(x, name):
    x = np.asarray(x)
    if x.ndim not in (3, 4):
        raise ValueError(f"{name}: expected 3 or 4 dimensions, got {x.ndim} (shape {x.shape})")
    return (x[None], True) if x.ndim == 3 else (x, False)


def _geometry(x, kernel_size, stride, padding, dilation, ceil_mode):
    """Normalised arguments and the output's (H, W), with torch's checks."""
    kernel = positive_pair(kernel_size, "kernel_size")
    stride = kernel if stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0) \
        else positive_pair(stride, "stride")
    padding = pair(padding, "padding")
    dilation = positive_pair(dilation, "dilation")
    for p, k in zip(padding, kernel):
        if p < 0 or 2 * p > k:
            raise ValueError(f"padding: expected non-negative values at most half the kernel size "
                             f"{kernel}, got {padding}")
    out = tuple(_output_size(x.shape[2 + a], kernel[a], stride[a], padding[a], dilation[a], ceil_mode)
                for a in range(2))
    if min(out) <= 0:
        raise ValueError(f"kernel_size: expected a window that fits the padded input, got output "
                         f"size {out}")
    return kernel, stride, padding, dilation, out


def _window_offset(x_shape, out, kernel, stride, padding, dilation, dh, dw):
    """For window offset (dh, dw): the input row/column of every output, and whether in bounds."""
    rows = np.arange(out[0]) * stride[0] - padding[0] + dh * dilation[0]
    cols = np.arange(out[1]) * stride[1] - padding[1] + dw * dilation[1]
    valid = ((rows >= 0) & (rows < x_shape[2]))[:, None] & ((cols >= 0) & (cols < x_shape[3]))[None, :]
    return np.clip(rows, 0, x_shape[2] - 1), np.clip(cols, 0, x_shape[3] - 1), valid


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    x, unbatched = _batched(input, "input")
    x = x.astype(np.float64)
    kernel, stride, padding, dilation, out = _geometry(x, kernel_size, stride, padding, dilation, ceil_mode)
    best = np.full(x.shape[:2] + out, -np.inf)
    index = np.full(x.shape[:2] + out, -1, dtype=np.int64)
    for dh in range(kernel[0]):
        for dw in range(kernel[1]):
            rows, cols, valid = _window_offset(x.shape, out, kernel, stride, padding, dilation, dh, dw)
            value = x[:, :, rows[:, None], cols[None, :]]
            take = valid & ((index < 0) | (value > best) | np.isnan(value))
            best = np.where(take, value, best)
            index = np.where(take, rows[:, None] * x.shape[3] + cols[None, :], index)
    if unbatched:
        best, index = best[0], index[0]
    return (best, index) if return_indices else best


def max_pool2d_backward(grad_output, input, indices, kernel_size, stride=None, padding=0,
                        dilation=1, ceil_mode=False):
    """Each grad_output element added to the input position its index names (any position of
    its plane, not only its window's)."""
    x, unbatched = _batched(input, "input")
    _, _, _, _, out = _geometry(x, kernel_size, stride, padding, dilation, ceil_mode)
    grad_output = np.asarray(grad_output, dtype=np.float64)
    indices = np.asarray(indices)
    if unbatched:
        grad_output, indices = grad_output[None], indices[None]
    n, c, h, w = x.shape
    if grad_output.shape != (n, c) + out:
        raise ValueError(f"grad_output: expected shape {(n, c) + out}, got {grad_output.shape}")
    if indices.shape != (n, c) + out:
        raise ValueError(f"indices: expected shape {(n, c) + out}, got {indices.shape}")
    if indices.dtype != np.int64:
        raise TypeError(f"indices: expected dtype int64, got {indices.dtype}")
    if indices.size and (indices.min() < 0 or indices.max() >= h * w):
        raise ValueError(f"indices: expected values in [0, {h * w}), got [{indices.min()}, {indices.max()}]")
    grad_input = np.zeros((n * c, h * w))
    planes = np.repeat(np.arange(n * c), out[0] * out[1])
    np.add.at(grad_input, (planes, indices.reshape(-1)), grad_output.reshape(-1))
    grad_input = grad_input.reshape(n, c, h, w)
    return grad_input[0] if unbatched else grad_input


def _avg_divisor(x_shape, out, kernel, stride, padding, count_include_pad, divisor_override):
    if divisor_override is not None:
        if isinstance(divisor_override, bool) or int(divisor_override) != divisor_override or divisor_override <= 0:
            raise ValueError(f"divisor_override: expected a positive integer, got {divisor_override!r}")
        return np.full(out, float(divisor_override))
    sizes = []
    for a in range(2):
        start = np.arange(out[a]) * stride[a] - padding[a]
        end = np.minimum(start + kernel[a], x_shape[2 + a] + padding[a])
        if not count_include_pad:
            start, end = np.maximum(start, 0), np.minimum(end, x_shape[2 + a])
        sizes.append(end - start)
    return (sizes[0][:, None] * sizes[1][None, :]).astype(np.float64)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    x, unbatched = _batched(input, "input")
    x = x.astype(np.float64)
    kernel, stride, padding, dilation, out = _geometry(x, kernel_size, stride, padding, 1, ceil_mode)
    divisor = _avg_divisor(x.shape, out, kernel, stride, padding, count_include_pad, divisor_override)
    total = np.zeros(x.shape[:2] + out)
    for dh in range(kernel[0]):
        for dw in range(kernel[1]):
            rows, cols, valid = _window_offset(x.shape, out, kernel, stride, padding, dilation, dh, dw)
            total += np.where(valid, x[:, :, rows[:, None], cols[None, :]], 0.0)
    result = total / divisor
    return result[0] if unbatched else result


def avg_pool2d_backward(grad_output, input, kernel_size, stride=None, padding=0, ceil_mode=False,
                        count_include_pad=True, divisor_override=None):
    """Each grad_output element divided by its window's divisor and added to every in-bounds
    position of its window."""
    x, unbatched = _batched(input, "input")
    kernel, stride, padding, dilation, out = _geometry(x, kernel_size, stride, padding, 1, ceil_mode)
    grad_output = np.asarray(grad_output, dtype=np.float64)
    if unbatched:
        grad_output = grad_output[None]
    n, c, h, w = x.shape
    if grad_output.shape != (n, c) + out:
        raise ValueError(f"grad_output: expected shape {(n, c) + out}, got {grad_output.shape}")
    share = grad_output / _avg_divisor(x.shape, out, kernel, stride, padding, count_include_pad,
                                       divisor_override)
    grad_input = np.zeros((n, c, h, w))
    for dh in range(kernel[0]):
        for dw in range(kernel[1]):
            rows, cols, valid = _window_offset(x.shape, out, kernel, stride, padding, dilation, dh, dw)
            np.add.at(grad_input, (slice(None), slice(None), rows[:, None], cols[None, :]),
                      np.where(valid, share, 0.0))
    return grad_input[0] if unbatched else grad_input
