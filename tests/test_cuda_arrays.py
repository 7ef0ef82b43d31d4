"""Ops on GPU arrays (CuPy arrays, torch CUDA tensors): outputs in the caller's library on the same
device, launched on the caller's current stream. The GPU tests skip only when no GPU is present;
the checks that need no GPU (a clear error without a device, mixed devices) always run."""

import numpy as np
import pytest
import torch

import convforge
from convforge import _C, reference
from helpers import assert_close, random

HAS_CUDA_BUILD = convforge.info()["cuda_built"]
HAS_GPU = convforge.info()["cuda_devices"] > 0
try:
    import cupy
except ImportError:
    cupy = None

needs_gpu = pytest.mark.skipif(not HAS_GPU, reason="no CUDA device on this machine")


class FakeDeviceArray:
    """Describes device memory through __cuda_array_interface__ only (never dereferenced)."""

    address = 1 << 20

    def __init__(self, shape, typestr="<f4"):
        FakeDeviceArray.address += 1 << 20  # disjoint fake allocations
        self.__cuda_array_interface__ = {"shape": tuple(shape), "typestr": typestr, "data": (self.address, False),
                                         "version": 3, "strides": None}


@pytest.mark.skipif(not HAS_CUDA_BUILD or HAS_GPU, reason="needs a CUDA build on a machine without a GPU")
def test_cuda_op_without_a_device_is_a_clear_error():
    x, w = FakeDeviceArray((1, 2, 5, 5)), FakeDeviceArray((3, 2, 3, 3))
    out = FakeDeviceArray((1, 3, 3, 3))
    with pytest.raises(RuntimeError, match="no CUDA device is available"):
        _C.conv2d_forward(x, w, None, out, (1, 1), (0, 0, 0, 0), (1, 1), 1)


@pytest.mark.skipif(not HAS_CUDA_BUILD, reason="needs a CUDA build")
def test_gpu_array_beside_a_numpy_array_is_a_clear_error():
    x = FakeDeviceArray((1, 2, 5, 5))
    w = np.zeros((3, 2, 3, 3), np.float32)
    out = FakeDeviceArray((1, 3, 3, 3))
    with pytest.raises(ValueError, match="weight: expected device cuda like input, got cpu"):
        _C.conv2d_forward(x, w, None, out, (1, 1), (0, 0, 0, 0), (1, 1), 1)


@pytest.mark.skipif(not HAS_CUDA_BUILD, reason="needs a CUDA build")
def test_every_array_of_an_op_is_checked_for_its_device():
    # The Python layer sets a CUDA context only when an op's first argument is a GPU array: with a
    # NumPy array there, the binding must reject a GPU array in any other position.
    x = np.zeros((1, 1, 4, 4), np.float32)
    dy, idx = np.zeros((1, 1, 2, 2), np.float32), np.zeros((1, 1, 2, 2), np.int64)
    gpu = FakeDeviceArray((1, 1, 2, 2))
    window = ((2, 2), (2, 2), (0, 0), (1, 1), False)
    with pytest.raises(ValueError, match="indices: expected device cpu like input, got cuda"):
        _C.max_pool2d_forward(x, np.zeros_like(dy), FakeDeviceArray((1, 1, 2, 2), "<i8"), *window)
    with pytest.raises(ValueError, match="grad_output: expected device cuda like grad_input, got cpu"):
        _C.max_pool2d_backward(dy, idx, FakeDeviceArray((1, 1, 4, 4)), *window)
    with pytest.raises(ValueError, match="indices: expected device cpu like grad_input, got cuda"):
        _C.max_pool2d_backward(dy, FakeDeviceArray((1, 1, 2, 2), "<i8"), x, *window)
    with pytest.raises(ValueError, match="grad_output: expected device cpu like grad_input, got cuda"):
        _C.avg_pool2d_backward(gpu, x, (2, 2), (2, 2), (0, 0), False, True, None)


@pytest.mark.skipif(not HAS_CUDA_BUILD, reason="needs a CUDA build")
def test_gpu_array_dtype_is_checked():
    with pytest.raises(TypeError, match="input: expected dtype float32 or float64, got typestr '<f2'"):
        _C.max_pool2d_forward(FakeDeviceArray((1, 1, 4, 4), "<f2"), FakeDeviceArray((1, 1, 2, 2), "<f2"),
                              None, (2, 2), (2, 2), (0, 0), (1, 1), False)


def test_torch_cpu_tensors_are_not_gpu_arrays():
    with pytest.raises(TypeError, match="input: expected a NumPy array, got Tensor"):
        convforge.conv2d(torch.zeros(1, 1, 3, 3), np.zeros((1, 1, 1, 1), np.float32))


# ----------------------------------------------------------------------------------------------
# On a GPU


def _oracle_conv(x, w, b):
    y = reference.conv2d(x, w, b, padding=1) if hasattr(reference, "conv2d") else None
    m = reference.conv2d(np.abs(x), np.abs(w), np.abs(b), padding=1) if y is not None else None
    return y, m


@needs_gpu
@pytest.mark.skipif(HAS_GPU and cupy is None, reason="CuPy is not installed")
def test_cupy_arrays_in_cupy_arrays_out():
    x, w, b = random((2, 3, 9, 9), np.float32, "x"), random((4, 3, 3, 3), np.float32, "w"), random((4,), np.float32, "b")
    stream = cupy.cuda.Stream(non_blocking=True)
    with stream:
        y = convforge.conv2d(cupy.asarray(x), cupy.asarray(w), cupy.asarray(b), padding=1)
        p, idx = convforge.max_pool2d(y, 2, return_indices=True)
        c = convforge.gemm(cupy.asarray(x[0, 0]), cupy.asarray(x[0, 1]))
    stream.synchronize()
    assert isinstance(y, cupy.ndarray) and isinstance(p, cupy.ndarray) and isinstance(idx, cupy.ndarray)
    expected, magnitude = _oracle_conv(x, w, b)
    assert_close(cupy.asnumpy(y), expected, magnitude, depth=28)
    assert_close(cupy.asnumpy(c), reference.gemm(x[0, 0], x[0, 1]), reference.gemm(np.abs(x[0, 0]), np.abs(x[0, 1])), depth=9)


@needs_gpu
@pytest.mark.skipif(HAS_GPU and not torch.cuda.is_available(), reason="torch has no CUDA")
def test_torch_cuda_tensors_in_torch_cuda_tensors_out():
    x, w, b = random((2, 3, 9, 9), np.float32, "x"), random((4, 3, 3, 3), np.float32, "w"), random((4,), np.float32, "b")
    xt = torch.from_numpy(x).cuda().requires_grad_()
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        y = convforge.conv2d(xt, torch.from_numpy(w).cuda(), torch.from_numpy(b).cuda(), padding=1)
        gx, gw, gb = convforge.conv2d_backward(torch.ones_like(y), xt, torch.from_numpy(w).cuda(), padding=1)
    stream.synchronize()
    assert y.is_cuda and y.device == xt.device and gw.is_cuda
    expected, magnitude = _oracle_conv(x, w, b)
    assert_close(y.cpu().numpy(), expected, magnitude, depth=28)


@needs_gpu
@pytest.mark.skipif(HAS_GPU and torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_arrays_on_two_gpus_are_a_clear_error():
    x = torch.zeros(1, 1, 4, 4, device="cuda:0")
    w = torch.zeros(1, 1, 1, 1, device="cuda:1")
    with pytest.raises(ValueError, match="expected an array on cuda:0"):
        convforge.conv2d(x, w)
