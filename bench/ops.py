"""The op families: how one case of a suite becomes inputs, the contestants (convforge and each
peer, possibly in several variants such as torch's NCHW and channels_last layouts), the float64
reference outputs that every contestant is checked against, and the work done (FLOP, bytes).

One function per op family, no code per suite or per shape.

conv2d and pooling run in both memory formats, on the same values: convforge on NCHW arrays and
on NHWC arrays viewed as NCHW (`x_nhwc.transpose(0, 3, 1, 2)`), torch on contiguous and
channels_last tensors. Each contestant carries its `layout`, so that the runner can pair
convforge's NCHW with torch's NCHW and convforge's NHWC with torch's channels_last.
"""

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

import convforge
from convforge import reference

from .check import Expected, memory_format

PEERS = ("numpy", "torch")
F32 = 4  # bytes
# The memory formats of the layout suites, by torch's names: "channels_last" is NHWC memory.
LAYOUTS = ("nchw", "channels_last")


@dataclass
class Impl:
    """One contestant: `fn()` runs the op once; `outputs(result)` turns what it returns into the
    list of NumPy arrays compared with the reference."""

    who: str  # "convforge" or a peer
    variant: str
    fn: Callable[[], Any]
    outputs: Callable[[Any], list] = lambda r: [r]
    is_reference: bool = False  # the oracle itself: its output defines the expected values
    layout: str | None = None  # one of LAYOUTS where the op runs in both memory formats
    # The 4-D outputs must come back in the memory format that the peers in the same layout
    # return (torch's rule, checked with the values: see check.compare_formats).
    check_layout: bool = False

    @property
    def label(self):
        tags = list(dict.fromkeys(t for t in (self.layout, self.variant) if t))
        return f"{self.who}[{', '.join(tags)}]" if tags else self.who


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
    return t.numpy()  # in the tensor's memory format: the check compares it with convforge's


def nhwc(a):
    """The same values in NHWC memory, viewed as NCHW (a NumPy channels_last array); 1-D as is."""
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2) if a.ndim == 4 else a


def _in_layout(layout, *arrays):
    return [nhwc(a) for a in arrays] if layout == "channels_last" else list(arrays)


def _torch_layouts(torch):
    return {"nchw": torch.contiguous_format, "channels_last": torch.channels_last} if torch is not None else {}


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
    layouts = _torch_layouts(torch)

    def tensors(*arrays, fmt):
        return [torch.from_numpy(a).contiguous(memory_format=fmt) if a.ndim == 4 else torch.from_numpy(a) for a in arrays]

    def algorithm(pass_name, layout):  # the CPU algorithm convforge's chooser runs, reported beside the time
        # In the layout the kernels read: NHWC arrays with one channel (lenet_conv1's input and
        # weight) are also NCHW ones, read as NCHW by torch's rule, as torch reads them.
        cx, cw = _in_layout(layout, x, w)
        nhwc_read = any(memory_format(a) == "channels_last" for a in (cx, cw))
        return convforge.conv2d_algorithm(x.shape, w.shape, pass_=pass_name, channels_last=nhwc_read, **args)

    impls = []
    if pass_ == "fwd":
        oracle, oracle_name = _oracle("conv2d")
        for layout in LAYOUTS:  # input and weight both in the layout, as torch's channels_last module has them
            cx, cw = _in_layout(layout, x, w)
            impls.append(Impl("convforge", algorithm("forward", layout),
                              lambda cx=cx, cw=cw: convforge.conv2d(cx, cw, bias, **args), layout=layout,
                              check_layout=True))
        if "numpy" in peers:
            impls.append(Impl("numpy", "reference", lambda: oracle(x, w, bias, **args), is_reference=True))
        for name, fmt in layouts.items():
            tx, tw, tbias = tensors(x, w, bias, fmt=fmt)
            impls.append(Impl("torch", name, lambda tx=tx, tw=tw, tb=tbias: torch.nn.functional.conv2d(tx, tw, tb, s, pad, 1, g),
                              lambda r: [_numpy_out(r)], layout=name))
        expected = [Expected("output", oracle(x, w, bias, **args), _magnitude(oracle, x, w, bias, **args),
                             (p["c_in"] // g) * kk * kk + 1)]
        flops = fwd_flops
        moved = F32 * (x.size + w.size + bias.size + np.prod(y_shape))
    else:  # grad_input + grad_weight, the pair a training step needs
        gy = uniform(rng, y_shape)
        mask = (True, True, False)
        oracle, oracle_name = _oracle("conv2d_backward")
        for layout in LAYOUTS:
            cgy, cx, cw = _in_layout(layout, gy, x, w)
            impls.append(Impl("convforge", f"dx {algorithm('grad_input', layout)}, dw {algorithm('grad_weight', layout)}",
                              lambda cgy=cgy, cx=cx, cw=cw: convforge.conv2d_backward(cgy, cx, cw, **args, output_mask=mask),
                              lambda r: list(r[:2]), layout=layout, check_layout=True))
        if "numpy" in peers:
            impls.append(Impl("numpy", "reference", lambda: oracle(gy, x, w, **args, output_mask=mask), lambda r: list(r[:2]),
                              is_reference=True))
        for name, fmt in layouts.items():
            tgy, tx, tw = tensors(gy, x, w, fmt=fmt)
            impls.append(Impl(
                "torch", name,
                lambda tgy=tgy, tx=tx, tw=tw: torch.ops.aten.convolution_backward(
                    tgy, tx, tw, None, [s, s], [pad, pad], [1, 1], False, [0, 0], g, [True, True, False]),
                lambda r: [_numpy_out(r[0]), _numpy_out(r[1])], layout=name))
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
    layouts = _torch_layouts(torch)
    as_t = lambda a, fmt: torch.from_numpy(a).contiguous(memory_format=fmt)  # noqa: E731
    kw = dict(kernel_size=k, stride=s, padding=pad)
    impls = []

    def add_convforge(op, *arrays, outputs=lambda r: [r]):
        """convforge's contestant in each layout: `op` applied to `arrays` in that layout."""
        for layout in LAYOUTS:
            impls.append(Impl("convforge", "", lambda a=_in_layout(layout, *arrays): op(*a), outputs, layout=layout,
                              check_layout=True))

    def add_torch(op, *arrays, outputs=lambda r: [_numpy_out(r)]):
        for name, fmt in layouts.items():
            impls.append(Impl("torch", name, lambda t=[as_t(a, fmt) for a in arrays]: op(*t), outputs, layout=name))

    if mode == "max":
        fwd_oracle, oracle_name = _oracle("max_pool2d")
        y, idx = fwd_oracle(x, **kw, return_indices=True)
        if pass_ == "fwd":
            add_convforge(lambda x: convforge.max_pool2d(x, **kw, return_indices=True), x, outputs=list)
            if "numpy" in peers:
                impls.append(Impl("numpy", "reference", lambda: fwd_oracle(x, **kw, return_indices=True), list,
                                  is_reference=True))
            add_torch(lambda tx: torch.nn.functional.max_pool2d(tx, k, s, pad, return_indices=True), x,
                      outputs=lambda r: [_numpy_out(r[0]), _numpy_out(r[1])])
            expected = [Expected("output", y, np.abs(y), 1), Expected("indices", idx)]
            moved = F32 * x.size + (F32 + 8) * y_size
        else:
            gy = uniform(rng, y.shape)
            oracle, oracle_name = _oracle("max_pool2d_backward")
            add_convforge(lambda gy, x, idx: convforge.max_pool2d_backward(gy, x, idx, **kw), gy, x, idx)
            if "numpy" in peers:
                impls.append(Impl("numpy", "reference", lambda: oracle(gy, x, idx, **kw), is_reference=True))
            add_torch(lambda tgy, tx, tidx: torch.ops.aten.max_pool2d_with_indices_backward(
                tgy, tx, [k, k], [s, s], [pad, pad], [1, 1], False, tidx), gy, x, idx)
            expected = [Expected("grad_input", oracle(gy, x, idx, **kw), _magnitude(oracle, gy, x, idx, **kw), k * k)]
            moved = (F32 + 8) * y_size + F32 * x.size
    else:
        if pass_ == "fwd":
            oracle, oracle_name = _oracle("avg_pool2d")
            add_convforge(lambda x: convforge.avg_pool2d(x, **kw), x)
            if "numpy" in peers:
                impls.append(Impl("numpy", "reference", lambda: oracle(x, **kw), is_reference=True))
            add_torch(lambda tx: torch.nn.functional.avg_pool2d(tx, k, s, pad), x)
            expected = [Expected("output", oracle(x, **kw), _magnitude(oracle, x, **kw), k * k)]
        else:
            gy = uniform(rng, (n, c, oh, ow))
            oracle, oracle_name = _oracle("avg_pool2d_backward")
            add_convforge(lambda gy, x: convforge.avg_pool2d_backward(gy, x, **kw), gy, x)
            if "numpy" in peers:
                impls.append(Impl("numpy", "reference", lambda: oracle(gy, x, **kw), is_reference=True))
            add_torch(lambda tgy, tx: torch.ops.aten.avg_pool2d_backward(tgy, tx, [k, k], [s, s], [pad, pad], False, True,
                                                                       None), gy, x)
            expected = [Expected("grad_input", oracle(gy, x, **kw), _magnitude(oracle, gy, x, **kw), k * k)]
        moved = F32 * (x.size + y_size)
    return Problem(impls, expected, flops=0.0, bytes=float(moved), oracle=oracle_name)


FAMILIES = {"gemm": gemm, "conv2d": conv2d, "pool2d": pool2d}
