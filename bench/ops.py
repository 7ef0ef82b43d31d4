"""The op families: how one case of a suite becomes inputs, the contestants (convforge and each
peer, possibly in several variants such as torch's NCHW and channels_last layouts), the float64
reference outputs that every contestant is checked against, and the work done (FLOP, bytes).

One function per op family, no code per suite or per shape.
"""

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

import convforge
from convforge import reference

from .check import Expected

PEERS = ("numpy", "torch")
F32 = 4  # bytes


@dataclass
class Impl:
    """One contestant: `fn()` runs the op once; `outputs(result)` turns what it returns into the
    list of NumPy arrays compared with the reference."""

    who: str  # "convforge" or a peer
    variant: str
    fn: Callable[[], Any]
    outputs: Callable[[Any], list] = lambda r: [r]
    is_reference: bool = False  # the oracle itself: its output defines the expected values


    @property
    def label(self):
        return f"{self.who}[{self.variant}]" if self.variant else self.who


@dataclass
class Problem:
    impls: list
    expected: list  # of check.Expected
    flops: float = 0.0
    bytes: float = 0.0
    items: int = 0  # work items per call (samples per epoch for the train suite)
    oracle: str = "convforge.reference"
    verify: Callable | None = None  # a custom check (train suite), replaces `expected`
    notes: list = field(default_factory=list)


def _torch():
    try:
        import torch
    except ImportError as e:  # pragma: no cover - torch is in the [bench] and [test] extras
        raise SystemExit("the torch peer needs PyTorch: pip install '.[bench]' (or drop it with --against numpy)") from e
    return torch


def uniform(rng, shape):
    return rng.uniform(-1.0, 1.0, size=shape).astype(np.float32)


def _numpy_out(t):
    return t.contiguous().numpy()


def _magnitude(fn, *arrays, **kwargs):
    """The reference evaluated on |inputs|: the sum of |terms| per output, which scales the
    tolerance (see tests/helpers.py)."""
    return fn(*[None if a is None else np.abs(a) for a in arrays], **kwargs)


def _oracle(name):
    """The float64 NumPy reference every contestant is checked against (and the numpy peer)."""
    return getattr(reference, name), "convforge.reference"


# ---------------------------------------------------------------------------------------------
# GEMM


def gemm(case, pass_, peers, rng):
    p = case.params
    m, n, k, trans_b = p["m"], p["n"], p["k"], p["trans_b"]
    a = uniform(rng, (m, k))
    b = uniform(rng, (n, k) if trans_b else (k, n))
    b_op = b.T if trans_b else b
    out = np.empty((m, n), np.float32)
    impls = [Impl("convforge", "gemm", lambda: convforge.gemm(a, b, trans_b=trans_b, out=out))]
    if "numpy" in peers:
        out_np = np.empty((m, n), np.float32)
        impls.append(Impl("numpy", "matmul", lambda: np.matmul(a, b_op, out=out_np)))
    if "torch" in peers:
        torch = _torch()
        ta, tb, tout = torch.from_numpy(a), torch.from_numpy(b_op), torch.empty(m, n)
        impls.append(Impl("torch", "mm", lambda: torch.mm(ta, tb, out=tout), lambda r: [r.numpy()]))
    expected = reference.gemm(a, b, trans_b=trans_b)
    magnitude = np.matmul(np.abs(a), np.abs(b_op))  # float32 is plenty for a tolerance scale
    return Problem(
        impls,
        [Expected("c", expected, magnitude, k)],
        flops=2.0 * m * n * k,
        bytes=F32 * (m * k + k * n + m * n),
    )


# ---------------------------------------------------------------------------------------------
# conv2d


def conv2d(case, pass_, peers, rng):
    p = case.params
    s, pad, g, kk = p["stride"], p["padding"], p["groups"], p["k"]
    x = uniform(rng, (p["n"], p["c_in"], p["h"], p["w"]))
    w = uniform(rng, (p["c_out"], p["c_in"] // g, kk, kk))
    bias = uniform(rng, (p["c_out"],))
    oh = (p["h"] + 2 * pad - kk) // s + 1
    ow = (p["w"] + 2 * pad - kk) // s + 1
    y_shape = (p["n"], p["c_out"], oh, ow)
    fwd_flops = 2.0 * p["n"] * p["c_out"] * oh * ow * (p["c_in"] // g) * kk * kk
    args = dict(stride=s, padding=pad, dilation=1, groups=g)
    torch = _torch() if "torch" in peers else None
    layouts = {}
    if torch is not None:
        layouts = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}

    def tensors(*arrays, fmt):
        return [torch.from_numpy(a).contiguous(memory_format=fmt) if a.ndim == 4 else torch.from_numpy(a) for a in arrays]

    def algorithm(pass_name):  # the CPU algorithm convforge's chooser runs, reported beside the time
        return convforge.conv2d_algorithm(x.shape, w.shape, pass_=pass_name, **args)

    if pass_ == "fwd":
        oracle, oracle_name = _oracle("conv2d")
        impls = [Impl("convforge", algorithm("forward"), lambda: convforge.conv2d(x, w, bias, **args))]
        if "numpy" in peers:
            impls.append(Impl("numpy", "reference", lambda: oracle(x, w, bias, **args), is_reference=True))
        for name, fmt in layouts.items():
            tx, tw, tbias = tensors(x, w, bias, fmt=fmt)
            impls.append(Impl("torch", name, lambda tx=tx, tw=tw, tb=tbias: torch.nn.functional.conv2d(tx, tw, tb, s, pad, 1, g),
                              lambda r: [_numpy_out(r)]))
        expected = [Expected("output", oracle(x, w, bias, **args), _magnitude(oracle, x, w, bias, **args),
                             (p["c_in"] // g) * kk * kk + 1)]
        flops = fwd_flops
        moved = F32 * (x.size + w.size + bias.size + np.prod(y_shape))
    else:  # grad_input + grad_weight, the pair a training step needs
        gy = uniform(rng, y_shape)
        mask = (True, True, False)
        oracle, oracle_name = _oracle("conv2d_backward")
        impls = [Impl("convforge", f"dx {algorithm('grad_input')}, dw {algorithm('grad_weight')}",
                      lambda: convforge.conv2d_backward(gy, x, w, **args, output_mask=mask), lambda r: list(r[:2]))]
        if "numpy" in peers:
            impls.append(Impl("numpy", "reference", lambda: oracle(gy, x, w, **args, output_mask=mask), lambda r: list(r[:2]),
                              is_reference=True))
        for name, fmt in layouts.items():
            tgy, tx, tw = tensors(gy, x, w, fmt=fmt)
            impls.append(Impl(
                "torch", name,
                lambda tgy=tgy, tx=tx, tw=tw: torch.ops.aten.convolution_backward(
                    tgy, tx, tw, None, [s, s], [pad, pad], [1, 1], False, [0, 0], g, [True, True, False]),
                lambda r: [_numpy_out(r[0]), _numpy_out(r[1])]))
        gx, gw = oracle(gy, x, w, **args, output_mask=mask)[:2]
        mgx, mgw = _magnitude(oracle, gy, x, w, **args, output_mask=mask)[:2]
        expected = [
            Expected("grad_input", gx, mgx, (p["c_out"] // g) * kk * kk),
            Expected("grad_weight", gw, mgw, p["n"] * oh * ow),
        ]
        flops = 2 * fwd_flops
        moved = F32 * (2 * x.size + 2 * w.size + np.prod(y_shape))
    return Problem(impls, expected, flops=flops, bytes=float(moved), oracle=oracle_name)


# ---------------------------------------------------------------------------------------------
# Pooling


def pool2d(case, pass_, peers, rng):
    p = case.params
    mode, k, s, pad = p["mode"], p["k"], p["stride"], p["padding"]
    x = uniform(rng, p["shape"])
    n, c, h, w = x.shape
    oh, ow = (h + 2 * pad - k) // s + 1, (w + 2 * pad - k) // s + 1
    y_size = n * c * oh * ow
    torch = _torch() if "torch" in peers else None
    layouts = {}
    if torch is not None:
        layouts = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}
    as_t = lambda a, fmt: torch.from_numpy(a).contiguous(memory_format=fmt)  # noqa: E731
    kw = dict(kernel_size=k, stride=s, padding=pad)
    impls = []
    if mode == "max":
        fwd_oracle, oracle_name = _oracle("max_pool2d")
        y, idx = fwd_oracle(x, **kw, return_indices=True)
        if pass_ == "fwd":
            impls.append(Impl("convforge", "", lambda: convforge.max_pool2d(x, **kw, return_indices=True), list))
            if "numpy" in peers:
                impls.append(Impl("numpy", "reference", lambda: fwd_oracle(x, **kw, return_indices=True), list,
                                  is_reference=True))
            for name, fmt in layouts.items():
                tx = as_t(x, fmt)
                impls.append(Impl("torch", name, lambda tx=tx: torch.nn.functional.max_pool2d(tx, k, s, pad, return_indices=True),
                                  lambda r: [_numpy_out(r[0]), _numpy_out(r[1])]))
            expected = [Expected("output", y, np.abs(y), 1), Expected("indices", idx)]
            moved = F32 * x.size + (F32 + 8) * y_size
        else:
            gy = uniform(rng, y.shape)
            oracle, oracle_name = _oracle("max_pool2d_backward")
            impls.append(Impl("convforge", "", lambda: convforge.max_pool2d_backward(gy, x, idx, **kw)))
            if "numpy" in peers:
                impls.append(Impl("numpy", "reference", lambda: oracle(gy, x, idx, **kw), is_reference=True))
            for name, fmt in layouts.items():
                tgy, tx, tidx = as_t(gy, fmt), as_t(x, fmt), as_t(idx, fmt)
                impls.append(Impl(
                    "torch", name,
                    lambda tgy=tgy, tx=tx, tidx=tidx: torch.ops.aten.max_pool2d_with_indices_backward(
                        tgy, tx, [k, k], [s, s], [pad, pad], [1, 1], False, tidx),
                    lambda r: [_numpy_out(r)]))
            expected = [Expected("grad_input", oracle(gy, x, idx, **kw), _magnitude(oracle, gy, x, idx, **kw), k * k)]
            moved = (F32 + 8) * y_size + F32 * x.size
    else:
        if pass_ == "fwd":
            oracle, oracle_name = _oracle("avg_pool2d")
            impls.append(Impl("convforge", "", lambda: convforge.avg_pool2d(x, **kw)))
            if "numpy" in peers:
                impls.append(Impl("numpy", "reference", lambda: oracle(x, **kw), is_reference=True))
            for name, fmt in layouts.items():
                tx = as_t(x, fmt)
                impls.append(Impl("torch", name, lambda tx=tx: torch.nn.functional.avg_pool2d(tx, k, s, pad),
                                  lambda r: [_numpy_out(r)]))
            expected = [Expected("output", oracle(x, **kw), _magnitude(oracle, x, **kw), k * k)]
        else:
            gy = uniform(rng, (n, c, oh, ow))
            oracle, oracle_name = _oracle("avg_pool2d_backward")
            impls.append(Impl("convforge", "", lambda: convforge.avg_pool2d_backward(gy, x, **kw)))
            if "numpy" in peers:
                impls.append(Impl("numpy", "reference", lambda: oracle(gy, x, **kw), is_reference=True))
            for name, fmt in layouts.items():
                tgy, tx = as_t(gy, fmt), as_t(x, fmt)
                impls.append(Impl(
                    "torch", name,
                    lambda tgy=tgy, tx=tx: torch.ops.aten.avg_pool2d_backward(tgy, tx, [k, k], [s, s], [pad, pad], False, True, None),
                    lambda r: [_numpy_out(r)]))
            expected = [Expected("grad_input", oracle(gy, x, **kw), _magnitude(oracle, gy, x, **kw), k * k)]
        moved = F32 * (x.size + y_size)
    return Problem(impls, expected, flops=0.0, bytes=float(moved), oracle=oracle_name)


FAMILIES = {"gemm": gemm, "conv2d": conv2d, "pool2d": pool2d}
