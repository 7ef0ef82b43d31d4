"""Plain, readable NumPy float64 implementations of every convforge op and its gradients.

They never call the compiled kernels: tests and benchmarks use them as the independent oracle.
Every function takes the same arguments as its counterpart in :mod:`convforge` and returns
float64 arrays.
"""

from .conv2d import conv2d, conv2d_backward
from .gemm import gemm, matmul
from .pool2d import avg_pool2d, avg_pool2d_backward, max_pool2d, max_pool2d_backward

__all__ = [
    "avg_pool2d",
    "avg_pool2d_backward",
    "conv2d",
    "conv2d_backward",
    "gemm",
    "matmul",
    "max_pool2d",
    "max_pool2d_backward",
]
