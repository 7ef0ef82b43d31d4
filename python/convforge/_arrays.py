"""Array adapters: how the functional API reads its inputs and allocates outputs in the caller's
array library (NumPy in, NumPy out; CuPy in, CuPy out; torch CUDA in, torch CUDA out), and how ops
on GPU arrays run on the caller's device and current stream (never synchronizing)."""

import functools
import threading

import numpy as np

from . import _C  # the compiled module itself


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


def _element_strides(x):
    stride = getattr(x, "stride", None)  # torch tensors (CPU ones too)
    if callable(stride):
        return tuple(stride())
    return tuple(s // x.itemsize for s in x.strides)


def channels_last(x):
    """Whether a 4-D array is in channels_last (NHWC) memory format, by torch's rule on its
    strides (``suggest_memory_format``): strides ordered C < W < H < N, with ties read as NCHW
    (an N x 1 x 1 x 1 array, or one whose channel and batch strides agree)."""
    if x.ndim != 4:
        return False
    shape, strides = x.shape, _element_strides(x)
    if strides[1] == 0:
        return False
    low = 0
    for d in (1, 3, 2, 0):
        if shape[d] == 0 or strides[d] < low or (d == 0 and low == strides[1]):
            return False
        low = strides[d] * (shape[d] if shape[d] > 1 else 1)
    return True


def _nhwc_dense(x):
    """Whether a 4-D array's memory is a dense N x H x W x C block (sizes of 1 have any stride)."""
    n, c, h, w = x.shape
    expected = {1: 1, 3: c, 2: c * w, 0: c * w * h}
    strides = _element_strides(x)
    return all(x.shape[d] == 1 or strides[d] == expected[d] for d in (0, 1, 2, 3))


def reads_nhwc(x):
    """Whether the kernels read this array's NHWC memory in place: host arrays on the CPU backend
    (the CUDA kernels, real or emulated, read NCHW)."""
    return type(x) is np.ndarray and _C.get_host_device() == "cpu"


def as_input(x, name, channels_last=False):
    """An array the kernels can read: C-contiguous (NCHW), or with ``channels_last`` a dense NHWC
    block viewed as NCHW. Anything else is copied once into that layout."""
    library = _library(x)
    if library is None:
        raise TypeError(f"{name}: expected a NumPy array, got {type(x).__name__}")
    if channels_last:
        if x.ndim != 4:
            raise ValueError(f"{name}: expected 4 dimensions, got {x.ndim} (shape {x.shape})")
        return x if _nhwc_dense(x) else to_channels_last(x)
    if library == "cupy":
        import cupy

        return cupy.ascontiguousarray(x)
    if library == "torch":
        return x.detach().contiguous()
    return np.ascontiguousarray(x)


def to_channels_last(x):
    """A copy of a 4-D array in dense NHWC memory, viewed as NCHW."""
    library = _library(x)
    if library == "torch":
        import torch

        return x.detach().contiguous(memory_format=torch.channels_last)
    xp = np if library == "numpy" else __import__("cupy")
    return xp.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


def empty(like, shape, dtype=None, channels_last=False):
    """An uninitialised output in the same library (and device) as `like`; with
    ``channels_last`` a 4-D output in NHWC memory, viewed as NCHW."""
    library = _library(like)
    if library == "torch":
        import torch

        dtype = like.dtype if dtype is None else getattr(torch, np.dtype(dtype).name)
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        return torch.empty(shape, dtype=dtype, device=like.device, memory_format=memory_format)
    if channels_last:
        n, c, h, w = shape
        return empty(like, (n, h, w, c), dtype).transpose(0, 3, 1, 2)
    if library == "cupy":
        import cupy

        with like.device:
            return cupy.empty(shape, dtype=like.dtype if dtype is None else dtype)
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


class _OpsInCudaContext:
    """The compiled module's functions, with every op called in the CUDA context (device and
    current stream) of its GPU array arguments; anything else is the module's attribute as is."""

    _OPS = {"gemm", "conv2d_forward", "conv2d_backward", "max_pool2d_forward", "max_pool2d_backward",
            "avg_pool2d_forward", "avg_pool2d_backward"}

    def __getattr__(self, name):
        fn = getattr(_C, name)
        if name not in self._OPS:
            return fn
        ndarray = np.ndarray

        @functools.wraps(fn)
        def call(*args):
            staging = _thread.staging
            if staging is not None:
                return _staged_call(name, fn, args, staging)
            # The first argument of every op is one of its arrays, and the binding requires all
            # of an op's arrays on one device: a NumPy array there means a host call (or a device
            # mismatch the binding reports), with no context to set. One type check per call.
            if type(args[0]) is not ndarray:
                for x in args:
                    if type(x) not in _HOST_TYPES:
                        _enter_cuda_context(args)
                        break
            return fn(*args)

        setattr(self, name, call)
        return call


ops_in_cuda_context = _OpsInCudaContext()


# ----------------------------------------------------------------------------------------------
# host_backend("cuda"): ops on NumPy arrays run on the GPU. Each distinct NumPy argument is copied
# to the device once (so an argument passed twice, like gemm's c and out, stays one array and the
# binding's aliasing checks see what they see on the host), the op runs on the caller's current
# stream, and every writable NumPy argument is copied back (an input comes back unchanged). For
# running the host test suite on a real GPU; the copies make it slow.

class _ThreadState(threading.local):
    staging = None  # a class default: no per-call exception for a thread that never set it


_thread = _ThreadState()


def _torch_staging():
    import torch

    return (lambda x: torch.from_numpy(np.array(x, order="C", copy=True)).cuda(),
            lambda d: d.cpu().numpy())


def _cupy_staging():
    import cupy

    return cupy.asarray, cupy.asnumpy


STAGING = {"torch": _torch_staging, "cupy": _cupy_staging}  # library -> () -> (to_device, to_host)


def staging_library():
    """The array library host_backend('cuda') copies through: torch with CUDA, else CuPy."""
    if _C.info()["cuda_devices"] == 0:
        raise RuntimeError("host_backend('cuda'): no CUDA device is available (no GPU or driver, or a build "
                           "without the CUDA kernels); use 'cpu' or 'cuda-emulated'")
    try:
        import torch

        if torch.cuda.is_available():
            return "torch"
    except ImportError:
        pass
    try:
        import cupy  # noqa: F401

        return "cupy"
    except ImportError:
        raise RuntimeError("host_backend('cuda') copies NumPy arrays to the GPU through torch or CuPy; "
                           "install one with CUDA") from None


def staging_off():
    """Whether ops on NumPy arrays in this thread run on the host (no ``host_backend('cuda')``)."""
    return _thread.staging is None


def set_staging(library):
    """Makes ops on NumPy arrays in this thread run on the GPU through `library` (None: not);
    returns the previous setting."""
    previous = _thread.staging
    _thread.staging = library
    return previous


def _staged_call(name, fn, args, library):
    to_device, to_host = STAGING[library]()
    if name == "gemm" and args[2] is not None and args[5] != 0 and args[2] is not args[3]:
        # On the GPU, gemm starts from c in out itself (as functional.gemm does for GPU arrays).
        args[3][...] = args[2]
        args = (*args[:2], args[3], *args[3:])
    on_device = {}
    staged = []
    for x in args:
        if type(x) is np.ndarray:
            if id(x) not in on_device:
                on_device[id(x)] = (x, to_device(x))
            staged.append(on_device[id(x)][1])
        else:
            staged.append(x)
    _enter_cuda_context(staged)
    result = fn(*staged)
    for x, d in on_device.values():
        if x.flags.writeable and x.size:
            x[...] = to_host(d)
    return result
