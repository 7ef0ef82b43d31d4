"""--device cuda: convforge's CUDA kernels against torch's CUDA ops (cuBLAS for GEMM, cuDNN for
conv2d, torch's pooling kernels). Every result is checked against the float64 reference first;
then each contestant is timed with CUDA events recorded around a batch of calls on the current
stream, which both convforge (it launches on the caller's current stream) and torch use, so the
events bracket exactly the timed work and only the end event is waited for.

--device cuda-emulated runs the same code without a GPU: convforge's CUDA kernels under the
emulator on NumPy arrays, torch on the CPU, and host-clock stand-ins for the events. Its numbers
mean nothing (the emulator is slow by design); it exists so that the CUDA mode is tested where
there is no GPU.
"""

import contextlib
import re
import time

import numpy as np

import convforge
from convforge import reference

from . import suites
from .check import Expected
from .ops import F32, Impl, Problem, uniform

DEVICES = ("cpu", "cuda", "cuda-emulated")

# The GPU suites: square SGEMM from n = 1024 to 8192 and the large Linear layer, and the conv2d and
# pooling suites of the CPU harness (forward and backward).
GEMM = (
    *[suites._gemm(f"square_{n}", n, n, n, quick=n in (1024, 4096)) for n in (1024, 2048, 4096, 8192)],
    suites._gemm("linear_64x9216x4096", 64, 4096, 9216, trans_b=True),
)
SUITES = {"gemm": GEMM, "conv2d": suites.CONV2D, "pool2d": suites.POOL2D}


class DeviceError(RuntimeError):
    """The device mode cannot run here (no GPU, no CUDA build, no CUDA torch)."""


class HostEvent:
    """torch.cuda.Event's interface on the host clock (the emulated device runs synchronously)."""

    def record(self):
        self.t = time.perf_counter()

    def synchronize(self):
        pass

    def elapsed_time(self, end):
        return (end.t - self.t) * 1e3


class Device:
    """Where the arrays live and how time is taken. `convforge_array` and `torch_array` turn a
    NumPy array into the contestants' inputs; `host` brings a result back for the check."""

    def __init__(self, name):
        import torch

        self.name, self.torch = name, torch
        info = convforge.info()
        if name == "cuda":
            if not info["cuda_built"]:
                raise DeviceError("--device cuda: this convforge build has no CUDA kernels (built without nvcc)")
            if info["cuda_devices"] == 0:
                raise DeviceError("--device cuda: no CUDA device is available")
            if not torch.cuda.is_available():
                raise DeviceError("--device cuda: the torch peer needs a CUDA build of PyTorch")
            # Compare like with like: true float32 on both sides (cuDNN would use TF32 on Ampere
            # and later), and cuDNN's fastest algorithm for each shape (autotuned in the warm-up).
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cudnn.benchmark = True
        elif name != "cuda-emulated":
            raise DeviceError(f"--device: expected one of {', '.join(DEVICES)}, got {name!r}")

    @property
    def gpu(self):
        return self.name == "cuda"

    def context(self):
        return contextlib.nullcontext() if self.gpu else convforge.host_backend("cuda-emulated")

    def convforge_array(self, a):
        # torch CUDA tensors: convforge then launches on torch's current stream, the peer's stream.
        return self.torch.from_numpy(a).cuda() if self.gpu else np.ascontiguousarray(a)

    def torch_array(self, a):
        t = self.torch.from_numpy(a)
        return t.cuda() if self.gpu else t

    def host(self, x):
        if isinstance(x, np.ndarray):
            return x
        return x.detach().cpu().contiguous().numpy()  # waits for the stream

    def synchronize(self):
        if self.gpu:
            self.torch.cuda.synchronize()

    def event(self):
        return self.torch.cuda.Event(enable_timing=True) if self.gpu else HostEvent()

    def timed(self, fn, reps):
        """Seconds per call of `reps` back-to-back calls, between two events on the current stream."""
        start, end = self.event(), self.event()
        start.record()
        for _ in range(reps):
            fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) * 1e-3 / reps

    def describe(self):
        """What the numbers were measured on: the `machine` and `software` parts of the JSON."""
        torch = self.torch
        software = {"convforge": convforge.__version__, "isa": convforge.info()["isa"], "numpy": np.__version__,
                    "torch": torch.__version__, "cuda_architectures": convforge.info()["cuda_architectures"]}
        if not self.gpu:
            from . import machine

            kind = f"cuda-emulated-{machine.machine_kind()}"
            return {"kind": kind, "device": self.name, "gpu": "none (emulated on the host)",
                    "cpu_model": machine.cpu_info()["model"], "peaks": {}}, software
        props = torch.cuda.get_device_properties(torch.cuda.current_device())
        software.update(torch_cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version(),
                        tf32=False, cudnn_benchmark=True)
        return {"kind": gpu_kind(props.name), "device": self.name, "gpu": props.name,
                "compute_capability": f"{props.major}.{props.minor}", "multiprocessors": props.multi_processor_count,
                "memory_gib": round(props.total_memory / 2**30, 1), "peaks": {}}, software


def gpu_kind(name):
    """'NVIDIA H200' -> 'nvidia-h200': the folder of this GPU's recorded results."""
    return "-".join(re.findall(r"[a-z0-9]+", name.lower())) or "gpu"


# ---------------------------------------------------------------------------------------------
# The problems: the families of bench/ops.py with the inputs on the device and torch as the peer.


def _magnitude(fn, *arrays, **kwargs):
    return fn(*[None if a is None else np.abs(a) for a in arrays], **kwargs)


def gemm(case, pass_, device, rng):
    p = case.params
    m, n, k, trans_b = p["m"], p["n"], p["k"], p["trans_b"]
    a = uniform(rng, (m, k))
    b = uniform(rng, (n, k) if trans_b else (k, n))
    da, db = device.convforge_array(a), device.convforge_array(b)
    out = device.convforge_array(np.empty((m, n), np.float32))
    torch = device.torch
    ta, tb = device.torch_array(a), device.torch_array(b)
    tb = tb.t() if trans_b else tb  # a transposed view: cuBLAS takes it as is
    tout = device.torch_array(np.empty((m, n), np.float32))
    impls = [Impl("convforge", "gemm", lambda: convforge.gemm(da, db, trans_b=trans_b, out=out), lambda r: [device.host(r)]),
             Impl("torch", "mm", lambda: torch.mm(ta, tb, out=tout), lambda r: [device.host(r)])]
    b_op = b.T if trans_b else b
    return Problem(impls, [Expected("c", reference.gemm(a, b, trans_b=trans_b), np.matmul(np.abs(a), np.abs(b_op)), k)],
                   flops=2.0 * m * n * k, bytes=F32 * (m * k + k * n + m * n), oracle="convforge.reference")


def conv2d(case, pass_, device, rng):
    p = case.params
    s, pad, g, kk = p["stride"], p["padding"], p["groups"], p["k"]
    x = uniform(rng, (p["n"], p["c_in"], p["h"], p["w"]))
    w = uniform(rng, (p["c_out"], p["c_in"] // g, kk, kk))
    bias = uniform(rng, (p["c_out"],))
    oh, ow = (p["h"] + 2 * pad - kk) // s + 1, (p["w"] + 2 * pad - kk) // s + 1
    y_shape = (p["n"], p["c_out"], oh, ow)
    fwd_flops = 2.0 * p["n"] * p["c_out"] * oh * ow * (p["c_in"] // g) * kk * kk
    args = dict(stride=s, padding=pad, dilation=1, groups=g)
    torch = device.torch
    layouts = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}

    def tensors(*arrays, fmt):
        return [device.torch_array(a).contiguous(memory_format=fmt) if a.ndim == 4 else device.torch_array(a)
                for a in arrays]

    if pass_ == "fwd":
        dx, dw, db = (device.convforge_array(v) for v in (x, w, bias))
        impls = [Impl("convforge", "", lambda: convforge.conv2d(dx, dw, db, **args), lambda r: [device.host(r)])]
        for name, fmt in layouts.items():
            tx, tw, tb = tensors(x, w, bias, fmt=fmt)
            impls.append(Impl("torch", name, lambda tx=tx, tw=tw, tb=tb: torch.nn.functional.conv2d(tx, tw, tb, s, pad, 1, g),
                              lambda r: [device.host(r)]))
        expected = [Expected("output", reference.conv2d(x, w, bias, **args),
                             _magnitude(reference.conv2d, x, w, bias, **args), (p["c_in"] // g) * kk * kk + 1)]
        flops, moved = fwd_flops, F32 * (x.size + w.size + bias.size + np.prod(y_shape))
    else:  # grad_input + grad_weight, as in bench/ops.py
        gy = uniform(rng, y_shape)
        mask = (True, True, False)
        dgy, dx, dw = (device.convforge_array(v) for v in (gy, x, w))
        impls = [Impl("convforge", "", lambda: convforge.conv2d_backward(dgy, dx, dw, **args, output_mask=mask),
                      lambda r: [device.host(r[0]), device.host(r[1])])]
        for name, fmt in layouts.items():
            tgy, tx, tw = tensors(gy, x, w, fmt=fmt)
            impls.append(Impl(
                "torch", name,
                lambda tgy=tgy, tx=tx, tw=tw: torch.ops.aten.convolution_backward(
                    tgy, tx, tw, None, [s, s], [pad, pad], [1, 1], False, [0, 0], g, [True, True, False]),
                lambda r: [device.host(r[0]), device.host(r[1])]))
        gx, gw = reference.conv2d_backward(gy, x, w, **args, output_mask=mask)[:2]
        mgx, mgw = _magnitude(reference.conv2d_backward, gy, x, w, **args, output_mask=mask)[:2]
        expected = [Expected("grad_input", gx, mgx, (p["c_out"] // g) * kk * kk),
                    Expected("grad_weight", gw, mgw, p["n"] * oh * ow)]
        flops, moved = 2 * fwd_flops, F32 * (2 * x.size + 2 * w.size + np.prod(y_shape))
    return Problem(impls, expected, flops=flops, bytes=float(moved), oracle="convforge.reference")


def pool2d(case, pass_, device, rng):
    p = case.params
    mode, k, s, pad = p["mode"], p["k"], p["stride"], p["padding"]
    x = uniform(rng, p["shape"])
    n, c, h, w = x.shape
    oh, ow = (h + 2 * pad - k) // s + 1, (w + 2 * pad - k) // s + 1
    y_size = n * c * oh * ow
    torch = device.torch
    kw = dict(kernel_size=k, stride=s, padding=pad)
    host = lambda r: [device.host(r)]  # noqa: E731
    dx, tx = device.convforge_array(x), device.torch_array(x)
    if mode == "max":
        y, idx = reference.max_pool2d(x, **kw, return_indices=True)
        if pass_ == "fwd":
            impls = [Impl("convforge", "", lambda: convforge.max_pool2d(dx, **kw, return_indices=True),
                          lambda r: [device.host(r[0]), device.host(r[1])]),
                     Impl("torch", "nchw", lambda: torch.nn.functional.max_pool2d(tx, k, s, pad, return_indices=True),
                          lambda r: [device.host(r[0]), device.host(r[1])])]
            expected = [Expected("output", y, np.abs(y), 1), Expected("indices", idx)]
            moved = F32 * x.size + (F32 + 8) * y_size
        else:
            gy = uniform(rng, y.shape)
            dgy, didx, tgy, tidx = device.convforge_array(gy), device.convforge_array(idx), device.torch_array(gy), device.torch_array(idx)
            impls = [Impl("convforge", "", lambda: convforge.max_pool2d_backward(dgy, dx, didx, **kw), host),
                     Impl("torch", "nchw", lambda: torch.ops.aten.max_pool2d_with_indices_backward(
                         tgy, tx, [k, k], [s, s], [pad, pad], [1, 1], False, tidx), host)]
            expected = [Expected("grad_input", reference.max_pool2d_backward(gy, x, idx, **kw),
                                 _magnitude(reference.max_pool2d_backward, gy, x, idx, **kw), k * k)]
            moved = (F32 + 8) * y_size + F32 * x.size
    else:
        if pass_ == "fwd":
            impls = [Impl("convforge", "", lambda: convforge.avg_pool2d(dx, **kw), host),
                     Impl("torch", "nchw", lambda: torch.nn.functional.avg_pool2d(tx, k, s, pad), host)]
            expected = [Expected("output", reference.avg_pool2d(x, **kw), _magnitude(reference.avg_pool2d, x, **kw), k * k)]
        else:
            gy = uniform(rng, (n, c, oh, ow))
            dgy, tgy = device.convforge_array(gy), device.torch_array(gy)
            impls = [Impl("convforge", "", lambda: convforge.avg_pool2d_backward(dgy, dx, **kw), host),
                     Impl("torch", "nchw", lambda: torch.ops.aten.avg_pool2d_backward(
                         tgy, tx, [k, k], [s, s], [pad, pad], False, True, None), host)]
            expected = [Expected("grad_input", reference.avg_pool2d_backward(gy, x, **kw),
                                 _magnitude(reference.avg_pool2d_backward, gy, x, **kw), k * k)]
        moved = F32 * (x.size + y_size)
    return Problem(impls, expected, bytes=float(moved), oracle="convforge.reference")


FAMILIES = {"gemm": gemm, "conv2d": conv2d, "pool2d": pool2d}


def build_problem(case, pass_, device, seed=0):
    rng = np.random.default_rng([seed, sum(map(ord, case.name)), len(pass_)])
    return FAMILIES[case.suite](case, pass_, device, rng)
