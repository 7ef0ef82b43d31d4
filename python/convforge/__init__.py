"""convforge: hand-written C++ and CUDA kernels for conv2d, pooling and GEMM, torch-shaped."""

import contextlib
from importlib import metadata as _metadata

from . import _C
from .functional import (
    avg_pool2d,
    avg_pool2d_backward,
    conv2d,
    conv2d_algorithm,
    conv2d_algorithms,
    conv2d_backward,
    gemm,
    matmul,
    max_pool2d,
    max_pool2d_backward,
    set_winograd_enabled,
    winograd_enabled,
)
from . import nn, optim  # noqa: E402  (the layers build on the functional API above)
from ._summary import summary  # noqa: E402

try:
    __version__ = _metadata.version("convforge")
except _metadata.PackageNotFoundError:  # a source checkout on PYTHONPATH
    __version__ = "0.0.0+source"

__all__ = [
    "avg_pool2d",
    "avg_pool2d_backward",
    "conv2d",
    "conv2d_algorithm",
    "conv2d_algorithms",
    "conv2d_backward",
    "gemm",
    "get_num_threads",
    "host_backend",
    "info",
    "matmul",
    "max_pool2d",
    "max_pool2d_backward",
    "nn",
    "optim",
    "set_num_threads",
    "set_winograd_enabled",
    "summary",
    "winograd_enabled",
]


def get_num_threads():
    """Threads the CPU kernels use (initially OMP_NUM_THREADS or the number of cores)."""
    return _C.get_num_threads()


def set_num_threads(n):
    """Set the number of threads the CPU kernels use, process-wide."""
    _C.set_num_threads(int(n))


@contextlib.contextmanager
def host_backend(name):
    """Within this block, ops on NumPy arrays in the current thread run on backend `name`:
    ``'cpu'`` (the default), ``'cuda-emulated'`` (the CUDA kernels executed on the host by
    convforge's emulator, which checks barriers and bounds; slow, for testing) or ``'cuda'`` (the
    CUDA kernels on the GPU: the arrays are copied there and back through torch or CuPy; for
    running NumPy-based tests on a GPU, not for speed)."""
    from . import _arrays

    if name == "cuda":
        previous_staging = _arrays.set_staging(_arrays.staging_library())
        try:
            yield
        finally:
            _arrays.set_staging(previous_staging)
        return
    previous = _C.get_host_device()
    _C.set_host_device(name)
    previous_staging = _arrays.set_staging(None)
    try:
        yield
    finally:
        _arrays.set_staging(previous_staging)
        _C.set_host_device(previous)


def info():
    """What this build of convforge is and runs on: ISA in use, threads, OpenMP, CUDA, versions."""
    import numpy

    details = dict(_C.info())
    details["conv_algorithms"] = list(conv2d_algorithms())
    details["version"] = __version__
    details["numpy"] = numpy.__version__
    return details
