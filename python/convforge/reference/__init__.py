"""Plain, readable NumPy float64 implementations of every convforge op and its gradients.

They never call the compiled kernels: tests and benchmarks use them as the independent oracle.
Every function takes the same arguments as its counterpart in :mod:`convforge` and returns
float64 arrays.
"""

from .gemm import gemm, matmul

__all__ = ["gemm", "matmul"]
