"""Reference conv2d and its gradients: NumPy float64, one strided slice per kernel tap.

A convolution is a sum over the kh * kw taps: for tap (i, j), every output pixel reads the
padded input at (oh * stride + i * dilation, ow * stride + j * dilation), which is one strided
slice of the padded input; the channel contraction of that slice with weight[:, :, i, j] is an
einsum per group. The gradients are the same sums read the other way round.
"""

import numbers

import numpy as np


def _pair(value, name):
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return (int(value), int(value))
    if isinstance(value, (tuple, list)) and len(value) in (1, 2):
        values = tuple(int(v) for v in value)
        return values * 2 if len(values) == 1 else values
    raise TypeError(f"{name}: expected an int or a pair of ints, got {value!r}")


def _arguments(weight_shape, stride, padding, dilation):
    """(stride, dilation, (top, bottom, left, right)) with torch's rules for 'same'/'valid'."""
    stride, dilation = _pair(stride, "stride"), _pair(dilation, "dilation")
    if min(stride) <= 0:
        raise ValueError(f"stride: expected positive values, got {stride}")
    if min(dilation) <= 0:
        raise ValueError(f"dilation: expected positive values, got {dilation}")
    if padding == "valid":
        pads = (0, 0, 0, 0)
    elif padding == "same":
        if stride != (1, 1):
            raise ValueError(f"padding='same' is not supported for strided convolutions, got stride={stride}")
        pads = ()
        for k, d in zip(weight_shape[2:], dilation):
            total = d * (k - 1)  # the odd extra pixel goes to the bottom/right, as in torch
            pads += (total // 2, total - total // 2)
    else:
        ph, pw = _pair(padding, "padding")
        if min(ph, pw) < 0:
            raise ValueError(f"padding: expected non-negative values, got {padding!r}")
        pads = (ph, ph, pw, pw)
    return stride, dilation, pads


def _tap(padded, i, j, stride, dilation, out_hw):
    """The strided slice of the padded input that kernel tap (i, j) reads: (..., out_h, out_w)."""
    (sh, sw), (dh, dw), (oh, ow) = stride, dilation, out_hw
    return padded[..., i * dh: i * dh + sh * (oh - 1) + 1: sh, j * dw: j * dw + sw * (ow - 1) + 1: sw]


def _shapes(x, weight, groups, stride, dilation, pads):
    n, c_in, h, w = x.shape
    c_out, c_per_group, kh, kw = weight.shape
    if not isinstance(groups, numbers.Integral) or groups <= 0 or c_in % groups or c_out % groups:
        raise ValueError(f"groups: expected a positive divisor of {c_in} and {c_out} channels, got {groups!r}")
    if c_per_group * groups != c_in:
        raise ValueError(f"weight: expected {c_in // groups} input channels per group, got {c_per_group}")
    oh = (h + pads[0] + pads[1] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (w + pads[2] + pads[3] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    if oh <= 0 or ow <= 0:
        raise ValueError("weight: expected a kernel no larger than the padded input")
    return oh, ow


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """float64 ``torch.nn.functional.conv2d`` (NCHW or unbatched CHW input)."""
    x = np.asarray(input, dtype=np.float64)
    weight = np.asarray(weight, dtype=np.float64)
    unbatched = x.ndim == 3
    if unbatched:
        x = x[None]
    stride, dilation, pads = _arguments(weight.shape, stride, padding, dilation)
    oh, ow = _shapes(x, weight, groups, stride, dilation, pads)
    n, c_in = x.shape[:2]
    c_out, c_per_group, kh, kw = weight.shape
    padded = np.pad(x, ((0, 0), (0, 0), pads[:2], pads[2:]))
    padded = padded.reshape(n, groups, c_per_group, *padded.shape[2:])  # n, g, c, H, W
    w = weight.reshape(groups, c_out // groups, c_per_group, kh, kw)  # g, o, c, kh, kw
    out = np.zeros((n, groups, c_out // groups, oh, ow))
    for i in range(kh):
        for j in range(kw):
            tap = _tap(padded, i, j, stride, dilation, (oh, ow))
            out += np.einsum("ngchw,goc->ngohw", tap, w[..., i, j], optimize=True)
    out = out.reshape(n, c_out, oh, ow)
    if bias is not None:
        out += np.asarray(bias, dtype=np.float64)[None, :, None, None]
    return out[0] if unbatched else out


def conv2d_backward(grad_output, input, weight, stride=1, padding=0, dilation=1, groups=1,
                    output_mask=(True, True, True)):
    """float64 gradients of :func:`conv2d`: ``(grad_input, grad_weight, grad_bias)``, ``None``
    where ``output_mask`` is false."""
    x = np.asarray(input, dtype=np.float64)
    weight = np.asarray(weight, dtype=np.float64)
    dy = np.asarray(grad_output, dtype=np.float64)
    unbatched = x.ndim == 3
    if unbatched:
        x, dy = x[None], dy[None]
    stride, dilation, pads = _arguments(weight.shape, stride, padding, dilation)
    oh, ow = _shapes(x, weight, groups, stride, dilation, pads)
    n, c_in, h, w_in = x.shape
    c_out, c_per_group, kh, kw = weight.shape
    if dy.shape != (n, c_out, oh, ow):
        raise ValueError(f"grad_output: expected shape {(n, c_out, oh, ow)}, got {dy.shape}")
    want_input, want_weight, want_bias = (bool(m) for m in output_mask)
    dy_g = dy.reshape(n, groups, c_out // groups, oh, ow)  # n, g, o, h, w
    w = weight.reshape(groups, c_out // groups, c_per_group, kh, kw)
    padded = np.pad(x, ((0, 0), (0, 0), pads[:2], pads[2:]))
    padded = padded.reshape(n, groups, c_per_group, *padded.shape[2:])

    grad_input = grad_weight = grad_bias = None
    if want_input:
        grad_padded = np.zeros_like(padded)
        for i in range(kh):
            for j in range(kw):
                _tap(grad_padded, i, j, stride, dilation, (oh, ow))[...] += np.einsum(
                    "ngohw,goc->ngchw", dy_g, w[..., i, j], optimize=True)
        grad_padded = grad_padded.reshape(n, c_in, *grad_padded.shape[3:])
        grad_input = grad_padded[:, :, pads[0]: pads[0] + h, pads[2]: pads[2] + w_in]
        grad_input = np.ascontiguousarray(grad_input)
        if unbatched:
            grad_input = grad_input[0]
    if want_weight:
        grad_w = np.zeros_like(w)
        for i in range(kh):
            for j in range(kw):
                tap = _tap(padded, i, j, stride, dilation, (oh, ow))
                grad_w[..., i, j] = np.einsum("ngohw,ngchw->goc", dy_g, tap, optimize=True)
        grad_weight = grad_w.reshape(weight.shape)
    if want_bias:
        grad_bias = dy.sum(axis=(0, 2, 3))
    return grad_input, grad_weight, grad_bias
