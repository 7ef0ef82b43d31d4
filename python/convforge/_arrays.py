"""Array adapters: how the functional API reads its inputs and allocates outputs in the caller's
array library (NumPy in, NumPy out; CuPy in, CuPy out; torch CUDA in, torch CUDA out), and how ops
on GPU arrays run on the caller's device and current stream (never synchronizing)."""

import functools

import numpy as np

from . import _C


def _library(x):
    """'numpy', 'cupy' or 'torch' (a CUDA tensor); None for anything else."""
    if isinstance(x, np.ndarray):
        return "numpy"
    module = type(x).__module__.split(".")[0]
    if module == "cupy" and hasattr(x, "__cuda_array_interface__"):
        return "cupy"
    if module == "torch" and getattr(x, "is_cuda", False):
        return "torch"
    return None


def is_array(x):
    return _library(x) is not None


def check_array(x, name):
    if not is_array(x):
        raise TypeError(f"{name}: expected a NumPy array, got {type(x).__name__} "
                        "(CuPy arrays and torch CUDA tensors are accepted too)")


def as_input(x, name):
    """A C-contiguous array the kernels can read; non-contiguous inputs are copied once."""
    library = _library(x)
    if library == "cupy":
        import cupy

        return cupy.ascontiguousarray(x)
    if library == "torch":
        return x.detach().contiguous()
    if library is None:
        raise TypeError(f"{name}: expected a NumPy array, got {type(x).__name__}")
    return np.ascontiguousarray(x)


def empty(like, shape, dtype=None):
    """An uninitialised output in the same library (and device) as `like`."""
    library = _library(like)
    if library == "cupy":
        import cupy

        with like.device:
            return cupy.empty(shape, dtype=like.dtype if dtype is None else dtype)
    if library == "torch":
        import torch

        dtype = like.dtype if dtype is None else getattr(torch, np.dtype(dtype).name)
        return torch.empty(shape, dtype=dtype, device=like.device)
    return np.empty(shape, dtype=like.dtype if dtype is None else dtype)


def _device_and_stream(x, library):
    if library == "cupy":
        import cupy

        return x.device.id, cupy.cuda.get_current_stream().ptr
    import torch

    return x.device.index, torch.cuda.current_stream(x.device).cuda_stream


def _enter_cuda_context(args):
    """Makes the GPU arrays' device and the caller's current stream those of the next launch;
    arrays on different GPUs are an error (a GPU array beside a NumPy one is caught by the
    binding)."""
    first = None
    for position, x in enumerate(args):
        library = _library(x)
        if library in (None, "numpy"):
            continue
        device, stream = _device_and_stream(x, library)
        if first is None:
            first = (position, device, stream)
        elif device != first[1]:
            raise ValueError(
                f"argument {position}: expected an array on cuda:{first[1]} like argument "
                f"{first[0]}, got one on cuda:{device}"
            )
    if first is not None:
        _C._set_cuda_context(first[1], first[2])


_HOST_TYPES = frozenset({np.ndarray, tuple, list, int, float, bool, str, type(None)})


class _Kernels:
    """The compiled module, with every op call made in the CUDA context of its GPU arguments."""

    _OPS = {"gemm", "conv2d_forward", "conv2d_backward", "max_pool2d_forward", "max_pool2d_backward",
            "avg_pool2d_forward", "avg_pool2d_backward"}

    def __getattr__(self, name):
        fn = getattr(_C, name)
        if name not in self._OPS:
            return fn

        @functools.wraps(fn)
        def call(*args):
            for x in args:  # the common case, host arrays and plain values, costs one set lookup each
                if type(x) not in _HOST_TYPES:
                    _enter_cuda_context(args)
                    break
            return fn(*args)

        setattr(self, name, call)
        return call


kernels = _Kernels()
