"""The PyTorch backend: custom ops (opcheck, gradcheck), modules, model swaps, training, compile,
fallbacks and data-parallel training. torch.nn.functional in float64 is the oracle."""

import math
import os
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import convforge
import convforge.torch as ct
from convforge._args import pair
from helpers import assert_close, tolerance

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DTYPES = [torch.float32, torch.float64]
ops = torch.ops.convforge


def tensor(shape, dtype=torch.float64, seed=0, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    return (2 * torch.rand(shape, generator=g, dtype=torch.float64) - 1).to(dtype).requires_grad_(requires_grad)


def f64(t):
    return t.detach().to(torch.float64)


def check(actual, expected, magnitude, depth, what="result"):
    assert actual.dtype in DTYPES
    assert_close(actual.detach().numpy(), expected.detach().numpy(), magnitude.detach().numpy(), depth,
                 dtype=torch.empty(0, dtype=actual.dtype).numpy().dtype, what=what)


# ----------------------------------------------------------------------------------------------
# Ops against torch.nn.functional (float64 oracle, derived tolerances), zero copy


# (input shape, weight shape, stride, padding, dilation, groups)
CONV_CASES = [
    ((2, 3, 9, 11), (4, 3, 3, 3), 1, 1, 1, 1),
    ((1, 4, 8, 7), (6, 2, 3, 2), (2, 1), (1, 0), 1, 2),
    ((3, 5, 10, 9), (7, 5, 1, 1), 2, 0, 1, 1),
    ((2, 3, 13, 12), (5, 3, 4, 4), 1, "same", (2, 1), 1),
    ((1, 6, 7, 7), (6, 1, 3, 3), 2, 1, 1, 6),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_forward_backward(case, dtype):
    shape, wshape, stride, padding, dilation, groups = case
    x, w, b = tensor(shape, dtype, 1, True), tensor(wshape, dtype, 2, True), tensor(wshape[0], dtype, 3, True)
    y = ct.conv2d(x, w, b, stride, padding, dilation, groups)
    args = (stride, padding, dilation, groups)
    depth = wshape[1] * wshape[2] * wshape[3]
    check(y, F.conv2d(f64(x), f64(w), f64(b), *args), F.conv2d(f64(x).abs(), f64(w).abs(), f64(b).abs(), *args), depth)

    g = tensor(y.shape, dtype, 4)
    gx, gw, gb = torch.autograd.grad(y, (x, w, b), g)
    x64, w64, b64 = (f64(t).requires_grad_() for t in (x, w, b))
    ex = torch.autograd.grad(F.conv2d(x64, w64, b64, *args), (x64, w64, b64), f64(g))
    mx = torch.autograd.grad(F.conv2d(x64.abs(), w64.abs(), b64, *args), (x64, w64, b64), f64(g).abs())
    spatial = y.shape[0] * y.shape[2] * y.shape[3]
    check(gx, ex[0], mx[0].abs(), wshape[0] // groups * wshape[2] * wshape[3], "grad_input")
    check(gw, ex[1], mx[1].abs(), spatial, "grad_weight")
    check(gb, ex[2], mx[2].abs(), spatial, "grad_bias")


# (input shape, kernel, stride, padding, dilation, ceil_mode)
POOL_CASES = [
    ((2, 3, 8, 8), 2, None, 0, 1, False),
    ((1, 2, 9, 11), 3, 2, 1, 1, True),
    ((2, 1, 7, 10), (3, 2), (2, 3), (1, 0), (1, 2), False),
    ((1, 3, 5, 5), 5, 1, 2, 1, True),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", POOL_CASES)
def test_max_pool2d(case, dtype):
    shape, kernel, stride, padding, dilation, ceil_mode = case
    x = tensor(shape, dtype, 5, True)
    y, idx = ct.max_pool2d(x, kernel, stride, padding, dilation, ceil_mode, return_indices=True)
    ey, eidx = F.max_pool2d(x.detach(), kernel, stride, padding, dilation, ceil_mode, return_indices=True)
    assert torch.equal(y, ey) and torch.equal(idx, eidx)
    g = tensor(y.shape, dtype, 6)
    (gx,) = torch.autograd.grad(y, x, g)
    x64 = f64(x).requires_grad_()
    (ex,) = torch.autograd.grad(F.max_pool2d(x64, kernel, stride, padding, dilation, ceil_mode), x64, f64(g))
    (mx,) = torch.autograd.grad(F.max_pool2d(x64, kernel, stride, padding, dilation, ceil_mode), x64, f64(g).abs())
    k = pair(kernel, "kernel")
    check(gx, ex, mx, k[0] * k[1], "grad_input")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("count_include_pad,divisor_override", [(True, None), (False, None), (True, 3)])
@pytest.mark.parametrize("case", POOL_CASES)
def test_avg_pool2d(case, count_include_pad, divisor_override, dtype):
    shape, kernel, stride, padding, _, ceil_mode = case
    args = (kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)
    x = tensor(shape, dtype, 7, True)
    y = ct.avg_pool2d(x, *args)
    k = pair(kernel, "kernel")
    check(y, F.avg_pool2d(f64(x), *args), F.avg_pool2d(f64(x).abs(), *args), k[0] * k[1])
    g = tensor(y.shape, dtype, 8)
    (gx,) = torch.autograd.grad(y, x, g)
    x64 = f64(x).requires_grad_()
    (ex,) = torch.autograd.grad(F.avg_pool2d(x64, *args), x64, f64(g))
    (mx,) = torch.autograd.grad(F.avg_pool2d(x64, *args), x64, f64(g).abs())
    check(gx, ex, mx, k[0] * k[1], "grad_input")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,features", [((5, 7), 3), ((2, 3, 17), 9), ((7,), 1), ((0, 4), 3)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear(shape, features, bias, dtype):
    x = tensor(shape, dtype, 9, True)
    w = tensor((features, shape[-1]), dtype, 10, True)
    b = tensor(features, dtype, 11, True) if bias else None
    y = ct.linear(x, w, b)
    b64 = None if b is None else f64(b)
    check(y, F.linear(f64(x), f64(w), b64), F.linear(f64(x).abs(), f64(w).abs(), None if b is None else b64.abs()), shape[-1] + 1)
    g = tensor(y.shape, dtype, 12)
    inputs = (x, w) if b is None else (x, w, b)
    grads = torch.autograd.grad(y, inputs, g)
    x64, w64 = f64(x).requires_grad_(), f64(w).requires_grad_()
    ex = torch.autograd.grad(F.linear(x64, w64, b64), (x64, w64), f64(g))
    mx = torch.autograd.grad(F.linear(x64.abs(), w64.abs()), (x64, w64), f64(g).abs())
    rows = max(1, math.prod(shape[:-1]))
    check(grads[0], ex[0], mx[0].abs(), features, "grad_input")
    check(grads[1], ex[1], mx[1].abs(), rows, "grad_weight")
    if b is not None:
        check(grads[2], f64(g).reshape(-1, features).sum(0), f64(g).abs().reshape(-1, features).sum(0), rows, "grad_bias")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ashape,bshape", [((6, 5), (5, 4)), ((3, 6, 5), (5, 4)), ((3, 6, 5), (3, 5, 2)), ((1, 1), (1, 9))])
def test_matmul(ashape, bshape, dtype):
    a, b = tensor(ashape, dtype, 13, True), tensor(bshape, dtype, 14, True)
    y = ct.matmul(a, b)
    check(y, f64(a) @ f64(b), f64(a).abs() @ f64(b).abs(), ashape[-1])
    g = tensor(y.shape, dtype, 15)
    ga, gb = torch.autograd.grad(y, (a, b), g)
    check(ga, f64(g) @ f64(b).mT, f64(g).abs() @ f64(b).abs().mT, bshape[-1], "grad_a")
    eb = (f64(a).mT @ f64(g)) if a.dim() == b.dim() else (f64(a).mT @ f64(g)).sum(0)
    mb = (f64(a).abs().mT @ f64(g).abs()) if a.dim() == b.dim() else (f64(a).abs().mT @ f64(g).abs()).sum(0)
    check(gb, eb, mb, ashape[0] * ashape[-2] if a.dim() != b.dim() else ashape[-2], "grad_b")


def test_unbatched_inputs():
    x, w = tensor((3, 8, 8), seed=16), tensor((4, 3, 3, 3), seed=17)
    torch.testing.assert_close(ct.conv2d(x, w, padding=1), ct.conv2d(x[None], w, padding=1)[0], rtol=0, atol=0)
    torch.testing.assert_close(ct.max_pool2d(x, 2), ct.max_pool2d(x[None], 2)[0], rtol=0, atol=0)
    torch.testing.assert_close(ct.avg_pool2d(x, 2), ct.avg_pool2d(x[None], 2)[0], rtol=0, atol=0)


def test_zero_copy():
    x = tensor((2, 3, 4, 4), torch.float32)
    view = ct._array(x)
    assert view.__array_interface__["data"][0] == x.data_ptr()  # the kernels see torch's memory
    ct.contiguous_copies.clear()
    ct.conv2d(x, tensor((2, 3, 3, 3), torch.float32), padding=1)
    ct.linear(tensor((4, 3), torch.float32), tensor((5, 3), torch.float32))
    ct.matmul(tensor((4, 3)), tensor((5, 3)).T)  # a transposed view is read in place
    assert not ct.contiguous_copies


def test_channels_last_in_place_other_layouts_copied_once_and_counted():
    x = tensor((2, 3, 6, 5), seed=18).to(memory_format=torch.channels_last)
    w = tensor((4, 3, 3, 3), seed=19)
    ct.contiguous_copies.clear()
    y = ct.conv2d(x, w, padding=1)
    assert not ct.contiguous_copies
    assert y.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(y, F.conv2d(x, w, padding=1))
    # An NCHW input to a conv2d with a channels_last weight: one copy into NHWC, as torch's.
    y = ct.conv2d(x.contiguous(), w.to(memory_format=torch.channels_last), padding=1)
    assert ct.contiguous_copies == {"conv2d:input": 1}
    assert y.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(y, F.conv2d(x, w, padding=1))
    strided = tensor((2, 3, 12, 5), seed=20)[:, :, ::2]
    y = ct.max_pool2d(strided, 2)
    assert ct.contiguous_copies["max_pool2d_with_indices:input"] == 1
    torch.testing.assert_close(y, F.max_pool2d(strided, 2), rtol=0, atol=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_channels_last_chain_makes_no_copies(dtype):
    """conv2d -> max_pool2d -> avg_pool2d on channels_last tensors, forward and backward through
    convforge.torch: no copies, channels_last outputs and gradients, values as torch's."""
    cl = torch.channels_last
    x = tensor((2, 8, 12, 11), dtype, 40).to(memory_format=cl).requires_grad_()
    w = tensor((16, 8, 3, 3), dtype, 41).to(memory_format=cl).requires_grad_()
    b = tensor(16, dtype, 42, True)

    def chain(conv, max_pool, avg_pool):
        y = conv(x, w, b, padding=1)
        p = max_pool(y, 2, ceil_mode=True)
        q = avg_pool(p, 3, stride=1, padding=1)
        grads = torch.autograd.grad((q * q).sum(), (x, w, b))
        return (y, p, q), grads

    ct.contiguous_copies.clear()
    outs, grads = chain(ct.conv2d, ct.max_pool2d, ct.avg_pool2d)
    assert not ct.contiguous_copies
    want_outs, want_grads = chain(F.conv2d, F.max_pool2d, F.avg_pool2d)
    for got, want in zip(outs + grads[:2], want_outs + want_grads[:2]):
        assert got.is_contiguous(memory_format=cl) and not got.is_contiguous()
        assert want.is_contiguous(memory_format=cl)
        torch.testing.assert_close(got, want)
    torch.testing.assert_close(grads[2], want_grads[2])


def test_bad_input_names_the_argument():
    with pytest.raises(TypeError, match="input: expected dtype float32 or float64"):
        ops.conv2d(torch.zeros(1, 1, 4, 4, dtype=torch.int32), torch.zeros(1, 1, 3, 3, dtype=torch.int32),
                   None, (1, 1), (0, 0, 0, 0), (1, 1), 1)
    with pytest.raises(ValueError, match="weight: expected 2 input channels per group"):
        ct.conv2d(torch.zeros(1, 2, 4, 4), torch.zeros(3, 1, 3, 3))


@pytest.mark.skipif(not (torch.cuda.is_available() and convforge.info()["cuda_devices"] > 0),
                    reason="no CUDA device on this machine")
def test_cuda_tensors_run_on_the_cuda_kernels():
    model, x = make("resnet", torch.float32)
    cpu = outputs_and_grads(ct.use(model), x)
    model.cuda()
    assert ct._array(next(model.parameters())).is_cuda  # handed over as a CUDA tensor, no copy
    gpu = outputs_and_grads(model, x.cuda())
    assert all(m.convforge_fallback is None for m in model.modules() if isinstance(m, SWAPPED))
    torch.testing.assert_close(gpu[0].cpu(), cpu[0])
    torch.testing.assert_close(gpu[1].cpu(), cpu[1])
    for name in cpu[2]:
        torch.testing.assert_close(gpu[2][name].cpu(), cpu[2][name])


# ----------------------------------------------------------------------------------------------
# opcheck and gradcheck on every op


def _opcheck_cases():
    x, w, b = tensor((2, 3, 7, 6), seed=20), tensor((4, 3, 3, 3), seed=21), tensor(4, seed=22)
    x2, w2 = tensor((1, 4, 9, 8), seed=23), tensor((6, 2, 2, 3), seed=24)
    conv = [(x, w, b, (1, 1), (1, 1, 1, 1), (1, 1), 1), (x2, w2, None, (2, 1), (0, 1, 2, 0), (1, 2), 2)]
    for args in conv:
        yield ops.conv2d, args
        y = ops.conv2d(*args)
        for mask in [(True, True, True), (True, False, False), (False, True, False)]:
            yield ops.conv2d_backward, (tensor(y.shape, seed=25), args[0], args[1], *args[3:], mask)
    for shape, k, s, p, d, c in [((2, 3, 7, 6), (2, 2), (2, 2), (0, 0), (1, 1), False),
                                 ((1, 2, 9, 8), (3, 2), (2, 1), (1, 1), (1, 2), True)]:
        xi = tensor(shape, seed=26)
        yield ops.max_pool2d_with_indices, (xi, k, s, p, d, c)
        y, idx = ops.max_pool2d_with_indices(xi, k, s, p, d, c)
        yield ops.max_pool2d_backward, (tensor(y.shape, seed=27), xi, idx, k, s, p, d, c)
        for cip, div in [(True, None), (False, None), (True, 2)]:
            yield ops.avg_pool2d, (xi, k, s, p, c, cip, div)
            y = ops.avg_pool2d(xi, k, s, p, c, cip, div)
            yield ops.avg_pool2d_backward, (tensor(y.shape, seed=28), xi, k, s, p, c, cip, div)
    for shape, n in [((5, 7), 3), ((2, 3, 4), 6)]:
        xi, wi, bi = tensor(shape, seed=29), tensor((n, shape[-1]), seed=30), tensor(n, seed=31)
        yield ops.linear, (xi, wi, bi)
        yield ops.linear, (xi, wi, None)
        for mask in [(True, True, True), (False, True, False)]:
            yield ops.linear_backward, (tensor((*shape[:-1], n), seed=32), xi, wi, mask)
    yield ops.matmul, (tensor((4, 5), seed=33), tensor((5, 3), seed=34))
    yield ops.matmul, (tensor((2, 4, 5), seed=35), tensor((5, 3), seed=36))
    yield ops.matmul, (tensor((2, 4, 5), seed=37), tensor((2, 5, 3), seed=38))


OPCHECK_CASES = list(_opcheck_cases())


@pytest.mark.parametrize("requires_grad", [False, True])
@pytest.mark.parametrize("case", range(len(OPCHECK_CASES)))
def test_opcheck(case, requires_grad):
    op, args = OPCHECK_CASES[case]
    args = [a.detach().clone().requires_grad_(requires_grad and a.is_floating_point())
            if isinstance(a, torch.Tensor) else a for a in args]
    torch.library.opcheck(op, tuple(args))


def test_every_op_is_opchecked():
    checked = {op._qualified_op_name if hasattr(op, "_qualified_op_name") else op._name for op, _ in OPCHECK_CASES}
    registered = {name for name in dir(ops) if not name.startswith("_") and isinstance(getattr(ops, name), torch._ops.OpOverloadPacket)}
    assert {f"convforge::{name}" for name in registered} <= checked


GRADCHECK_CASES = [
    ("conv2d", lambda x, w, b: ct.conv2d(x, w, b, 2, 1), [(2, 2, 5, 4), (3, 2, 3, 3), (3,)]),
    ("conv2d groups dilation same", lambda x, w: ct.conv2d(x, w, None, 1, "same", (2, 1), 2), [(1, 4, 5, 4), (2, 2, 2, 3)]),
    ("conv2d 1x1 stride 2", lambda x, w: ct.conv2d(x, w, None, 2), [(2, 3, 5, 4), (2, 3, 1, 1)]),
    ("max_pool2d", lambda x: ct.max_pool2d(x, 3, 2, 1, 1, True), [(1, 2, 6, 5)]),
    ("max_pool2d dilation", lambda x: ct.max_pool2d(x, (2, 3), 1, 0, (2, 1)), [(1, 1, 5, 6)]),
    ("avg_pool2d", lambda x: ct.avg_pool2d(x, 3, 2, 1, True, False), [(1, 2, 6, 5)]),
    ("avg_pool2d divisor", lambda x: ct.avg_pool2d(x, 2, 1, 1, False, True, 3), [(1, 2, 4, 3)]),
    ("linear", ct.linear, [(4, 5), (3, 5), (3,)]),
    ("linear batched", lambda x, w: ct.linear(x, w), [(2, 3, 5), (4, 5)]),
    ("matmul", ct.matmul, [(4, 5), (5, 3)]),
    ("matmul batched", ct.matmul, [(2, 4, 5), (2, 5, 3)]),
    ("matmul broadcast b", ct.matmul, [(2, 4, 5), (5, 3)]),
]


@pytest.mark.parametrize("name,fn,shapes", GRADCHECK_CASES, ids=[c[0] for c in GRADCHECK_CASES])
def test_gradcheck(name, fn, shapes):
    inputs = [tensor(s, seed=40 + i, requires_grad=True) for i, s in enumerate(shapes)]
    if name.startswith("max_pool2d"):  # distinct values: no ties for the argmax to hop between
        inputs = [torch.randperm(x.numel(), generator=torch.Generator().manual_seed(1)).reshape(x.shape)
                  .to(torch.float64).div(x.numel()).requires_grad_() for x in inputs]
    assert torch.autograd.gradcheck(fn, inputs)
    assert torch.autograd.gradgradcheck(fn, inputs, fast_mode=True)  # the backward ops' autograd


# ----------------------------------------------------------------------------------------------
# Modules and model swaps


class LeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.AvgPool2d(2))
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))

    def forward(self, x):
        return self.classifier(self.features(x))


class Block(nn.Module):
    """A ResNet basic block: 3x3 (maybe stride 2), 3x3, and a 1x1 projection when the shape changes."""

    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.shortcut = nn.Conv2d(c_in, c_out, 1, stride) if stride != 1 or c_in != c_out else nn.Identity()

    def forward(self, x):
        return F.relu(self.conv2(F.relu(self.bn1(self.conv1(x)))) + self.shortcut(x))


class ResNetish(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2, 1))
        self.blocks = nn.Sequential(Block(8, 16, 2), Block(16, 16, 1))
        self.pool = nn.AvgPool2d(4)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        return self.fc(self.pool(self.blocks(self.stem(x))).flatten(1))


MODELS = {"lenet": (LeNet, (4, 1, 28, 28)), "resnet": (ResNetish, (4, 3, 16, 16))}
SWAPPED = (ct.Conv2d, ct.MaxPool2d, ct.AvgPool2d, ct.Linear)


def make(name, dtype, seed=0):
    torch.manual_seed(seed)
    cls, shape = MODELS[name]
    return cls().to(dtype), tensor(shape, dtype, seed + 100)


def outputs_and_grads(model, x):
    x = x.detach().clone().requires_grad_()
    out = model(x)
    out.backward(torch.linspace(-1, 1, out.numel(), dtype=out.dtype).reshape(out.shape))
    grads = {name.removeprefix("_orig_mod."): p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad()
    return out.detach(), x.grad, grads


def depth_of(model, x):
    """An upper bound on the longest chain of sums: every layer's reduction, forward and backward."""
    depth, batch_area = 0, x.shape[0] * x.shape[2] * x.shape[3]
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            depth += m.weight[0].numel() + m.out_channels * m.kernel_size[0] * m.kernel_size[1] + batch_area
        elif isinstance(m, nn.Linear):
            depth += m.in_features + m.out_features + x.shape[0]
    return depth


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_replace_modules_same_outputs_and_gradients(name, dtype):
    model, x = make(name, dtype)
    params = {n: p for n, p in model.named_parameters()}
    keys = list(model.state_dict())
    text = repr(model)
    native = outputs_and_grads(model, x)
    assert ct.replace_modules(model) is model
    assert sum(isinstance(m, SWAPPED) for m in model.modules()) >= 6
    assert all(type(m) not in ct._SWAPS for m in model.modules())
    assert {n: p for n, p in model.named_parameters()} == params  # the same Parameter objects
    assert list(model.state_dict()) == keys and repr(model) == text
    swapped = outputs_and_grads(model, x)
    depth = depth_of(model, x)
    # Network level: each result within a chain of `depth` sums of its own scale.
    for what, a, e in [("output", swapped[0], native[0]), ("grad_input", swapped[1], native[1]),
                       *((f"grad {n}", swapped[2][n], native[2][n]) for n in params)]:
        check(a, f64(e), f64(e).abs().max().expand(e.shape), depth, what)
    assert all(m.convforge_fallback is None for m in model.modules() if isinstance(m, SWAPPED))
    ct.restore_modules(model)
    assert not any(isinstance(m, SWAPPED) for m in model.modules())


def train(model, x, steps=6, swap_after=None):
    """SGD with momentum on a fixed batch; swaps the modules after `swap_after` steps, with the
    optimizer already holding the Parameters (and momentum)."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    labels = torch.arange(x.shape[0]) % 10
    losses = []
    for step in range(steps):
        if step == swap_after:
            ct.use(model)
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), labels)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("name", MODELS)
def test_training_same_losses(name):
    """float32 training from the same seed: native, swapped before training, and swapped after
    the optimizer's first step (it keeps working: the Parameters are the same objects)."""
    native = train(*make(name, torch.float32))
    swapped = train(*make(name, torch.float32), swap_after=0)
    swapped_later = train(*make(name, torch.float32), swap_after=2)
    model, x = make(name, torch.float32)
    depth = depth_of(model, x) * len(native)  # differences compound over the steps
    allowed = tolerance(max(native), depth, np.float32)
    print(f"\n{name} losses native : {' '.join(f'{v:.7f}' for v in native)}")
    print(f"{name} losses swapped: {' '.join(f'{v:.7f}' for v in swapped)}")
    print(f"{name} swapped at step 2: {' '.join(f'{v:.7f}' for v in swapped_later)} (allowed {allowed:.2g})")
    assert np.all(np.abs(np.subtract(swapped, native)) <= allowed), (native, swapped, allowed)
    assert np.all(np.abs(np.subtract(swapped_later, native)) <= allowed), (native, swapped_later, allowed)
    assert native[-1] < native[0]


def test_modules_match_torch_construction():
    torch.manual_seed(3)
    mine = [ct.Conv2d(3, 8, 3, stride=2, padding=1, bias=False), ct.MaxPool2d(3, 2, 1, ceil_mode=True),
            ct.AvgPool2d(2, count_include_pad=False), ct.Linear(5, 4)]
    torch.manual_seed(3)
    theirs = [nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False), nn.MaxPool2d(3, 2, 1, ceil_mode=True),
              nn.AvgPool2d(2, count_include_pad=False), nn.Linear(5, 4)]
    for a, b in zip(mine, theirs):
        assert isinstance(a, type(b)) and repr(a) == repr(b)
        sa, sb = a.state_dict(), b.state_dict()
        assert list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)
    x = tensor((2, 3, 8, 8), torch.float32)
    out, idx = ct.MaxPool2d(2, return_indices=True)(x)
    assert torch.equal(idx, nn.MaxPool2d(2, return_indices=True)(x)[1])
    assert torch.equal(nn.MaxUnpool2d(2)(out, idx), nn.MaxUnpool2d(2)(*nn.MaxPool2d(2, return_indices=True)(x)))
    lin = ct.Linear(5, 4)
    torch.testing.assert_close(lin(tensor(5, torch.float32)), nn.Linear.forward(lin, tensor(5, torch.float32)))


def test_user_subclasses_are_left_alone():
    class MyConv(nn.Conv2d):
        pass

    model = nn.Sequential(MyConv(1, 1, 3), nn.Conv2d(1, 1, 3))
    ct.replace_modules(model)
    assert type(model[0]) is MyConv and type(model[1]) is ct.Conv2d
    root = ct.replace_modules(nn.Linear(2, 2))  # the model itself can be a layer
    assert type(root) is ct.Linear


# ----------------------------------------------------------------------------------------------
# Fallbacks


@pytest.mark.parametrize("make_module,x,reason", [
    (lambda: ct.Conv2d(2, 3, 3, padding=1, padding_mode="reflect"), tensor((1, 2, 5, 5), torch.float32), "padding_mode='reflect'"),
    (lambda: ct.Conv2d(2, 3, 3).to(torch.bfloat16), tensor((1, 2, 5, 5), torch.bfloat16), "dtype bfloat16"),
    (lambda: ct.MaxPool2d(2), tensor((1, 2, 4, 4), torch.float16), "dtype float16"),
    (lambda: ct.AvgPool2d(2), tensor((1, 2, 4, 4), torch.bfloat16), "dtype bfloat16"),
    (lambda: ct.Linear(4, 3).to(torch.float16), tensor((2, 4), torch.float16), "dtype float16"),
])
def test_fallback_is_visible_and_warns_once(make_module, x, reason):
    module = make_module()
    assert module.convforge_fallback is None
    ct.fallbacks.clear()
    with pytest.warns(ct.ConvforgeFallbackWarning, match=reason):
        y = module(x)
    assert reason in module.convforge_fallback
    torch.testing.assert_close(y, module._torch_class.forward(module, x), rtol=0, atol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        module(x)  # once per module and reason
    # every call is counted, the warning or not
    assert ct.fallbacks == {f"{type(module).__name__}: {module.convforge_fallback}": 2}


def test_mixed_dtypes_fall_back_to_torch_error():
    with pytest.warns(ct.ConvforgeFallbackWarning, match="mixed dtypes"), pytest.raises(RuntimeError):
        ct.Conv2d(1, 1, 3)(tensor((1, 1, 4, 4)))  # float64 input, float32 weight: torch's own error


# ----------------------------------------------------------------------------------------------
# torch.compile


def test_torch_compile_swapped_model():
    """The fake kernels let torch.compile trace the ops as graph nodes: no graph break anywhere
    (fullgraph), forward and backward match eager mode."""
    from torch._inductor import cpp_builder

    try:
        compiler = cpp_builder.get_cpp_compiler()
    except Exception as error:  # noqa: BLE001 - any failure here means no inductor on this machine
        pytest.skip(f"torch's inductor finds no C++ compiler here: {error}")
    if shutil.which(compiler) is None:
        pytest.skip(f"torch's inductor C++ compiler {compiler!r} is not installed")
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = ct.use(nn.Sequential(  # small: inductor's C++ compile dominates the time
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 8, 3, stride=2),
        nn.AvgPool2d(2), nn.Flatten(), nn.Linear(8, 3)))
    x = tensor((2, 1, 12, 12), torch.float32)
    eager = outputs_and_grads(model, x)
    compiled = outputs_and_grads(torch.compile(model, fullgraph=True, dynamic=False), x)
    for a, e in [(compiled[0], eager[0]), (compiled[1], eager[1]), *((compiled[2][n], eager[2][n]) for n in eager[2])]:
        torch.testing.assert_close(a, e)


def test_torch_export_swapped_model():
    """torch.export sees the convforge ops as graph nodes, with a symbolic batch size."""
    torch.manual_seed(0)
    model = ct.use(nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True), nn.Conv2d(4, 8, 3, stride=2),
        nn.AvgPool2d(2), nn.Flatten(), nn.Linear(8, 3)))
    x = tensor((2, 1, 13, 12), torch.float32)
    batch = torch.export.Dim("batch", min=2, max=64)
    program = torch.export.export(model, (x,), dynamic_shapes=({0: batch},))
    targets = {str(n.target) for n in program.graph.nodes if n.op == "call_function"}
    assert {"convforge.conv2d.default", "convforge.max_pool2d_with_indices.default",
            "convforge.avg_pool2d.default", "convforge.linear.default"} <= targets
    for n in (2, 5):
        xn = tensor((n, 1, 13, 12), torch.float32, seed=n)
        torch.testing.assert_close(program.module()(xn), model(xn), rtol=0, atol=0)


# ----------------------------------------------------------------------------------------------
# Data-parallel training


def test_ddp_example_matches_single_process():
    """examples/ddp_train.py: 2 processes over gloo on localhost train with DistributedDataParallel
    and convforge modules; their parameters match one process trained on the whole batches."""
    env = dict(os.environ)
    package_dir = os.path.dirname(os.path.dirname(convforge.__file__))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_dir, env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "examples", "ddp_train.py"),
         "--steps", "3", "--dtype", "float64", "--verify"],
        capture_output=True, text=True, timeout=120, env=env,
    )
    print(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "max parameter difference" in result.stdout
