"""The switch: torch.nn.functional's conv2d, pooling and linear calls routed to convforge's ops.

``convforge.torch.enabled()`` (a context manager), ``enable()`` and ``disable()`` push and pop a
``TorchFunctionMode``. While it is on, torch hands every torch function call in that thread to
:meth:`_ConvforgeMode.__torch_function__`, which runs the calls listed in ``_ROUTES`` on the
custom ops of :mod:`convforge.torch` (with their autograd formulas) and passes every other call,
and every call convforge cannot run, to torch unchanged. Code that calls
``torch.nn.functional`` directly (Keras 3 on its torch backend, hand-written training loops,
Lightning modules) therefore needs no change at all.

Why a function mode and not ``torch.library`` overrides of the aten CPU kernels: a mode is
scoped (on and off at will, per thread, no global kernel registry edits), it sees the call
before torch's autograd records anything, so convforge's own backward ops run, and
``torch.compile`` traces through it and records the convforge custom ops as graph nodes.
Its cost is one Python call per torch function call made while it is on (README: overhead).

Torch keeps function modes per thread: the switch is on in the thread that turned it on. The
backward pass needs nothing: autograd runs the convforge ops' own backward formulas in any thread.
"""

from __future__ import annotations

import contextlib
import threading
import warnings

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from . import torch as _ct

_is_compiling = getattr(torch.compiler, "is_compiling", lambda: False)  # torch >= 2.3
_disabled_torch_function = torch._C._disabled_torch_function_impl
_CUDA = "cuda" in _ct._DEVICES
_warned = set()


class _Unsupported(Exception):
    """Raised by a route before any work: this call runs on torch (the message says why)."""


def _check(input, dims, *others):
    """Raise _Unsupported unless convforge's kernels can take these tensors as they are. Lean on
    purpose: it runs on every routed call (dtypes are singletons, so `is` compares them)."""
    dtype = input.dtype if isinstance(input, torch.Tensor) else None
    for t in (input, *others):
        if t is None:
            continue
        cls = type(t)
        if cls is not torch.Tensor and cls is not nn.Parameter:
            if not isinstance(t, torch.Tensor):
                raise _Unsupported(f"a {cls.__name__} argument")
            if cls.__torch_function__ is not _disabled_torch_function:  # it has its own
                raise _Unsupported(f"tensor subclass {cls.__name__}")
        if t.dtype is not dtype:
            raise _Unsupported("mixed dtypes")
        if not (t.is_cpu or (_CUDA and t.is_cuda)):
            raise _Unsupported(f"device {t.device.type}")
    if dtype not in _ct._DTYPES:
        raise _Unsupported(f"dtype {str(dtype).removeprefix('torch.')}")
    if others and any(t is not None and t.get_device() != input.get_device() for t in others):
        raise _Unsupported("tensors on different devices")
    if dims is not None and input.dim() not in dims:
        raise _Unsupported(f"a {input.dim()}-dimensional input")


# ----------------------------------------------------------------------------------------------
# Routes: torch's signatures, convforge's ops. Each raises _Unsupported before doing any work.


def _conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    _check(input, (3, 4), weight, bias)
    return _ct.conv2d(input, weight, bias, stride, padding, dilation, groups)


def _linear(input, weight, bias=None):
    _check(input, None, weight, bias)
    if input.dim() == 0 or weight.dim() != 2 or (bias is not None and bias.shape != weight.shape[:1]):
        raise _Unsupported("a 0-dimensional input, a weight that is not 2-D or a bias that is not (out_features,)")
    return _ct.linear(input, weight, bias)


def _max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                return_indices=False):
    _check(input, (3, 4))
    return _ct.max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def _max_pool2d_with_indices(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                             return_indices=True):
    _check(input, (3, 4))
    return _ct.max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices=True)


def _avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                divisor_override=None):
    _check(input, (3, 4))
    return _ct.avg_pool2d(input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                          divisor_override)


def _adaptive_avg_pool2d(input, output_size):
    # When the output size divides the input size, the adaptive windows are a plain tiling:
    # avg_pool2d with kernel = stride = input / output (ResNet's global pooling is the usual case).
    _check(input, (3, 4))
    size = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
    if len(size) != 2:
        raise _Unsupported(f"output_size {output_size!r}")
    height, width = input.shape[-2:]
    out = tuple(n if o is None else o for o, n in zip(size, (height, width)))
    if min(out) <= 0 or height % out[0] or width % out[1]:
        raise _Unsupported(f"output size {out} that does not divide the input size {(height, width)}")
    kernel = (height // out[0], width // out[1])
    return _ct.avg_pool2d(input, kernel, kernel)


def _not_implemented(*args, **kwargs):
    raise _Unsupported("not implemented by convforge")


# torch function -> (name in the counters, route). F.conv2d is torch.conv2d, F.linear and
# F.avg_pool2d are torch._C._nn builtins; F.max_pool2d's two Python variants both hand
# F.max_pool2d itself to the mode.
_ROUTES = {
    torch.conv2d: ("conv2d", _conv2d),
    F.linear: ("linear", _linear),
    F.max_pool2d: ("max_pool2d", _max_pool2d),
    F.max_pool2d_with_indices: ("max_pool2d", _max_pool2d_with_indices),
    torch.max_pool2d: ("max_pool2d", _max_pool2d),
    torch._C._nn.max_pool2d_with_indices: ("max_pool2d", _max_pool2d_with_indices),
    F.avg_pool2d: ("avg_pool2d", _avg_pool2d),
    F.adaptive_avg_pool2d: ("adaptive_avg_pool2d", _adaptive_avg_pool2d),
}
# Neighbours of the routed ops that convforge does not implement: they run on torch, counted,
# so a model that relies on them shows it in convforge.torch.fallbacks.
for _name in ("conv1d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
              "max_pool1d", "max_pool3d", "avg_pool1d", "avg_pool3d", "adaptive_max_pool2d",
              "lp_pool2d", "fractional_max_pool2d"):
    _ROUTES.setdefault(getattr(F, _name), (_name, _not_implemented))
del _name


def _fall_back(op, reason, func, args, kwargs):
    if not _is_compiling():
        key = f"{op}: {reason}"
        _ct._count(_ct.fallbacks, key)
        # Warn once per op and reason, as the modules do; not for meta tensors, which carry no
        # data (Keras builds its models on them): those are only counted.
        if key not in _warned and reason != "device meta":
            _warned.add(key)
            warnings.warn(f"convforge.torch switch: {op} with {reason} is not supported, running "
                          f"torch's implementation", _ct.ConvforgeFallbackWarning,
                          stacklevel=3)  # the line that called a builtin such as F.conv2d
    return func(*args, **kwargs)


class _ConvforgeMode(TorchFunctionMode):
    """Runs the calls in _ROUTES on convforge; torch pops the mode while this runs, so the
    calls made here (including torch's own, on a fallback) do not come back to it."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if kwargs is None:
            kwargs = {}
        try:
            route = _ROUTES.get(func)
        except TypeError:  # an unhashable callable: not one of ours
            route = None
        if route is None:
            return func(*args, **kwargs)
        op, run = route
        try:
            result = run(*args, **kwargs)
        except _Unsupported as why:
            reason = str(why)
        except (TypeError, ValueError) as error:
            # Arguments convforge rejects (a bad shape, an out= argument, ...): torch gives its
            # own result or its own error, so code written against torch behaves the same.
            reason = f"arguments convforge rejects ({error})"
        else:
            if not _is_compiling():
                _ct._count(_ct.dispatched, op)
            return result
        return _fall_back(op, reason, func, args, kwargs)  # outside the handler: no chained traceback


# ----------------------------------------------------------------------------------------------
# On and off, per thread

_local = threading.local()


def _mode():
    return getattr(_local, "mode", None)


def _push():
    if _mode() is None:
        mode = _ConvforgeMode()
        mode.__enter__()
        _local.mode = mode


def _pop():
    mode = _mode()
    if mode is None:
        return
    depth = torch._C._len_torch_function_stack()
    if depth == 0 or torch._C._get_function_stack_at(depth - 1) is not mode:
        raise RuntimeError("convforge.torch: another torch function mode was entered after the switch "
                           "was turned on and is still active; exit it first")
    mode.__exit__(None, None, None)
    _local.mode = None


def is_enabled():
    """Whether the switch is on in the calling thread."""
    return _mode() is not None


def enable():
    """Turn the switch on in the calling thread until :func:`disable` (idempotent)."""
    _push()
    _local.forced = True


def disable():
    """Turn the switch off in the calling thread (also inside an :func:`enabled` block)."""
    _local.forced = False
    _pop()


@contextlib.contextmanager
def enabled():
    """Run torch.nn.functional's conv2d, max/avg/adaptive-avg pooling and linear calls, and the
    torch.nn layers built on them, on convforge inside the ``with`` block (in this thread)::

        with convforge.torch.enabled():
            model.fit(x, y)             # Keras on torch, Lightning's Trainer.fit, a plain loop

    Nested blocks and a block inside :func:`enable` change nothing. Calls convforge cannot run
    go to torch, counted in ``convforge.torch.fallbacks``; the ones it ran are counted in
    ``convforge.torch.dispatched``.
    """
    if is_enabled():
        yield
        return
    _push()
    try:
        yield
    finally:
        if not getattr(_local, "forced", False):
            _pop()
