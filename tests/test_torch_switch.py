"""The switch (convforge.torch.enabled / enable / disable): which calls it routes, against
torch.nn.functional in float64; fallbacks (counted, warned once, torch's exact result or error);
on/off semantics; threads; no_grad and inference mode; torch.compile."""

import threading
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import convforge.torch as ct
from helpers import assert_close

DTYPES = [torch.float32, torch.float64]


def tensor(shape, dtype=torch.float64, seed=0, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    return (2 * torch.rand(shape, generator=g, dtype=torch.float64) - 1).to(dtype).requires_grad_(requires_grad)


def f64(t):
    return t.detach().to(torch.float64)


@pytest.fixture(autouse=True)
def clean():
    """Each test starts with the switch off and the counters empty, and leaves it off."""
    assert not ct.is_enabled()
    for counter in (ct.dispatched, ct.fallbacks):
        counter.clear()
    yield
    ct.disable()


def ran_on_convforge(t):
    """Whether t's autograd graph has a convforge node within two steps (an unbatched call adds a
    select after it)."""
    nodes = [t.grad_fn]
    for _ in range(2):
        if any("convforge" in type(n).__name__ for n in nodes):
            return True
        nodes = [m for n in nodes if n is not None for m, _ in n.next_functions]
    return any("convforge" in type(n).__name__ for n in nodes)


def run_both(call, inputs):
    """call(*inputs) under the switch and in float64 on torch (the oracle), with the gradients of
    a fixed random weighting of the outputs. Returns (switched, oracle, magnitude) triples."""
    with ct.enabled():
        out = call(*inputs)
    out = out[0] if isinstance(out, tuple) else out
    g = tensor(out.shape, out.dtype, 99)
    grads = torch.autograd.grad(out, inputs, g)
    x64 = [f64(t).requires_grad_() for t in inputs]
    ref = call(*x64)
    ref = ref[0] if isinstance(ref, tuple) else ref
    ref_grads = torch.autograd.grad(ref, x64, f64(g))
    abs64 = [f64(t).abs().requires_grad_() for t in inputs]
    mag = call(*abs64)
    mag = mag[0] if isinstance(mag, tuple) else mag
    mag_grads = torch.autograd.grad(mag, abs64, f64(g).abs())
    return out, [(out, ref, mag), *zip(grads, ref_grads, mag_grads)]


# (what, call, input shapes, the op it counts as, reduction depth). Shapes are odd on purpose.
ROUTED = [
    ("F.conv2d", lambda x, w, b: F.conv2d(x, w, b, 1, 1), [(2, 3, 9, 7), (4, 3, 3, 3), (4,)], "conv2d", 27 + 36 + 126),
    ("torch.conv2d strided groups", lambda x, w: torch.conv2d(x, w, None, (2, 1), (1, 0), 1, 2),
     [(1, 4, 8, 7), (6, 2, 3, 2)], "conv2d", 12 + 18 + 28),
    ("F.conv2d same dilation unbatched", lambda x, w: F.conv2d(x, w, padding="same", dilation=2),
     [(3, 9, 8), (5, 3, 3, 3)], "conv2d", 27 + 45 + 72),
    ("F.max_pool2d", lambda x: F.max_pool2d(x, 3, 2, 1, ceil_mode=True), [(2, 3, 9, 8)], "max_pool2d", 9),
    ("F.max_pool2d indices", lambda x: F.max_pool2d(x, 2, return_indices=True), [(2, 3, 8, 9)], "max_pool2d", 4),
    ("F.max_pool2d_with_indices", lambda x: F.max_pool2d_with_indices(x, (2, 3), dilation=(2, 1)),
     [(1, 2, 9, 9)], "max_pool2d", 6),
    ("torch.max_pool2d", lambda x: torch.max_pool2d(x, 2), [(1, 2, 7, 6)], "max_pool2d", 4),
    ("F.avg_pool2d", lambda x: F.avg_pool2d(x, 3, 2, 1, count_include_pad=False), [(2, 3, 9, 8)], "avg_pool2d", 9),
    ("F.avg_pool2d divisor ceil", lambda x: F.avg_pool2d(x, 2, ceil_mode=True, divisor_override=3),
     [(1, 2, 7, 5)], "avg_pool2d", 4),
    ("F.adaptive_avg_pool2d global", lambda x: F.adaptive_avg_pool2d(x, 1), [(2, 3, 6, 5)], "adaptive_avg_pool2d", 30),
    ("F.adaptive_avg_pool2d tiles", lambda x: F.adaptive_avg_pool2d(x, (3, None)), [(1, 2, 9, 4)], "adaptive_avg_pool2d", 3),
    ("F.linear", lambda x, w, b: F.linear(x, w, b), [(5, 7), (3, 7), (3,)], "linear", 8),
    ("F.linear batched no bias", lambda x, w: F.linear(x, w), [(2, 3, 7), (4, 7)], "linear", 7),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("what,call,shapes,op,depth", ROUTED, ids=[r[0] for r in ROUTED])
def test_routed_calls_run_on_convforge(what, call, shapes, op, depth, dtype):
    if "max_pool" in what:  # distinct values: no ties for the argmax to hop between in float32
        inputs = [torch.randperm(int(np.prod(s)), generator=torch.Generator().manual_seed(1)).reshape(s)
                  .to(dtype).div(np.prod(s)).requires_grad_() for s in shapes]
    else:
        inputs = [tensor(s, dtype, i + 1, True) for i, s in enumerate(shapes)]
    out, results = run_both(call, inputs)
    # The autograd node is convforge's op: forward and backward ran on its kernels.
    assert ran_on_convforge(out)
    assert ct.dispatched == {op: 1} and not ct.fallbacks
    npdtype = torch.empty(0, dtype=dtype).numpy().dtype
    for (actual, expected, magnitude), name in zip(results, ["output"] + [f"grad {i}" for i in range(len(inputs))]):
        assert_close(actual.numpy(force=True), expected.numpy(force=True), magnitude.numpy(force=True),
                     depth, dtype=npdtype, what=name)
    if "indices" in what:
        with ct.enabled():
            _, idx = call(inputs[0].detach())
        assert torch.equal(idx, call(inputs[0].detach())[1])


def test_torch_nn_modules_run_on_convforge():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1, padding_mode="reflect"), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Conv2d(4, 4, 3, bias=False), nn.AvgPool2d(2, ceil_mode=True),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    x = tensor((3, 2, 11, 10), torch.float32, 5)
    native = model(x)
    with ct.enabled():
        out = model(x)
    # reflect padding is done by the module itself (F.pad), the convolution after it by convforge
    assert ct.dispatched == {"conv2d": 2, "max_pool2d": 1, "avg_pool2d": 1, "adaptive_avg_pool2d": 1, "linear": 1}
    assert not ct.fallbacks
    torch.testing.assert_close(out, native)
    pool = nn.MaxPool2d(2, return_indices=True)
    with ct.enabled():
        out, idx = pool(x)
    assert torch.equal(idx, pool(x)[1]) and ct.dispatched["max_pool2d"] == 2


def test_swapped_modules_are_not_routed_twice():
    model = ct.use(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(8, 2)))
    with ct.enabled():
        model(tensor((1, 1, 4, 4), torch.float32))
    assert not ct.dispatched and not ct.fallbacks  # the modules call convforge's ops themselves


# ----------------------------------------------------------------------------------------------
# Fallbacks: torch's own result (bit for bit) or torch's own error, counted, warned once


FALLBACKS = [
    ("float16", lambda: F.conv2d(tensor((1, 2, 5, 5), torch.float16), tensor((3, 2, 3, 3), torch.float16)),
     "conv2d: dtype float16"),
    ("bfloat16", lambda: F.linear(tensor((2, 4), torch.bfloat16), tensor((3, 4), torch.bfloat16)), "linear: dtype bfloat16"),
    ("integer", lambda: F.max_pool2d(torch.arange(16).reshape(1, 1, 4, 4), 2), "max_pool2d: dtype int64"),
    ("transposed", lambda: F.conv_transpose2d(tensor((1, 2, 4, 4)), tensor((2, 3, 3, 3))),
     "conv_transpose2d: not implemented by convforge"),
    ("conv1d", lambda: F.conv1d(tensor((1, 2, 9)), tensor((3, 2, 3))), "conv1d: not implemented by convforge"),
    ("adaptive uneven", lambda: F.adaptive_avg_pool2d(tensor((1, 2, 7, 5)), 3), "adaptive_avg_pool2d: output size"),
    ("scalar bias", lambda: F.linear(tensor((2, 4)), tensor((3, 4)), tensor(())), "linear: a 0-dimensional input, a weight that is not 2-D or a bias"),
]


@pytest.mark.parametrize("what,call,key", FALLBACKS, ids=[f[0] for f in FALLBACKS])
def test_fallback_runs_torch_counted_and_warned_once(what, call, key):
    expected = call()
    with ct.enabled():
        with pytest.warns(ct.ConvforgeFallbackWarning, match="switch"):
            out = call()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            call()  # once per op and reason (this process may have warned already: at most once)
    assert torch.equal(out, expected)  # torch ran: bit for bit
    assert not ct.dispatched
    [(counted, n)] = ct.fallbacks.items()
    assert counted.startswith(key) and n == 2


@pytest.mark.parametrize("call,key", [
    (lambda: F.conv2d(tensor((1, 2, 5, 5)), tensor((3, 4, 3, 3))), "conv2d: arguments convforge rejects (weight: expected"),
    (lambda: F.linear(tensor((2, 4), torch.float32), tensor((3, 4))), "linear: mixed dtypes"),
    (lambda: F.max_pool2d(tensor((1, 1, 4, 4)), 2, padding=2), "max_pool2d: arguments convforge rejects (padding"),
], ids=["channels", "mixed dtypes", "padding over half the kernel"])
def test_invalid_arguments_raise_torch_errors(call, key):
    """Calls convforge rejects go to torch, which raises its own error (a RuntimeError), as it
    does without the switch."""
    with pytest.raises(RuntimeError) as native:
        call()
    with ct.enabled(), pytest.raises(RuntimeError) as switched, warnings.catch_warnings():
        warnings.simplefilter("ignore", ct.ConvforgeFallbackWarning)
        call()
    assert str(switched.value) == str(native.value)
    [counted] = ct.fallbacks
    assert counted.startswith(key) and not ct.dispatched


def test_meta_tensors_are_counted_without_a_warning():
    with ct.enabled(), warnings.catch_warnings():
        warnings.simplefilter("error")
        out = F.conv2d(torch.empty(2, 3, 8, 8, device="meta"), torch.empty(4, 3, 3, 3, device="meta"))
    assert out.shape == (2, 4, 6, 6) and ct.fallbacks == {"conv2d: device meta": 1}


# ----------------------------------------------------------------------------------------------
# On and off


def test_on_off_and_nesting():
    x, w = tensor((1, 1, 5, 5)), tensor((1, 1, 3, 3))
    F.conv2d(x, w)
    assert not ct.dispatched
    with ct.enabled():
        assert ct.is_enabled()
        with ct.enabled():  # nested: no second mode, no double routing
            F.conv2d(x, w)
        assert ct.is_enabled()
    assert not ct.is_enabled() and ct.dispatched["conv2d"] == 1
    ct.enable()
    ct.enable()
    with ct.enabled():
        pass
    assert ct.is_enabled()  # a block inside enable() leaves it on
    F.conv2d(x, w)
    ct.disable()
    F.conv2d(x, w)
    assert not ct.is_enabled() and ct.dispatched["conv2d"] == 2
    with ct.enabled():
        ct.enable()
    assert ct.is_enabled()  # enable() inside a block outlasts it
    ct.disable()
    ct.disable()  # idempotent
    with ct.enabled():
        ct.disable()
        assert not ct.is_enabled()
    assert not ct.is_enabled()


def test_disable_under_another_mode_is_refused():
    class Other(torch.overrides.TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            return func(*args, **(kwargs or {}))

    ct.enable()
    with Other():
        with pytest.raises(RuntimeError, match="another torch function mode"):
            ct.disable()
    ct.disable()
    assert not ct.is_enabled()


def test_threads_are_independent_and_counts_exact():
    """The switch is per thread: threads with it on run convforge, threads without run torch,
    at the same time; the shared counters lose no increments."""
    x, w = tensor((2, 3, 12, 12), torch.float32, 1), tensor((8, 3, 3, 3), torch.float32, 2, True)
    native = F.conv2d(x, w, padding=1)
    rounds, errors, barrier = 25, [], threading.Barrier(6)

    def work(on):
        try:
            barrier.wait()
            for _ in range(rounds):
                if on:
                    with ct.enabled():
                        y = F.conv2d(x, w, padding=1)
                    assert ran_on_convforge(y)
                else:
                    y = F.conv2d(x, w, padding=1)
                    assert not ran_on_convforge(y)
                torch.testing.assert_close(y, native)
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(i % 2 == 0,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert ct.dispatched == {"conv2d": 3 * rounds}


def test_no_grad_and_inference_mode():
    x, w, b = tensor((2, 3, 7, 7), torch.float32, 1, True), tensor((4, 3, 3, 3), torch.float32, 2, True), tensor(4, torch.float32, 3, True)
    native = F.max_pool2d(F.conv2d(x, w, b), 2)
    with ct.enabled(), torch.no_grad():
        y = F.max_pool2d(F.conv2d(x, w, b), 2)
    assert y.grad_fn is None and not y.requires_grad
    torch.testing.assert_close(y, native)
    with ct.enabled(), torch.inference_mode():
        z = F.max_pool2d(F.conv2d(x, w, b), 2)
    assert z.is_inference() and z.grad_fn is None
    torch.testing.assert_close(z, native.detach())
    assert ct.dispatched == {"conv2d": 2, "max_pool2d": 2}


# ----------------------------------------------------------------------------------------------
# torch.compile


def test_torch_compile_inside_the_switch():
    """A plain torch.nn model compiled inside the switch: dynamo traces through the switch and
    records convforge's custom ops as graph nodes (no graph break); inductor compiles it; the
    outputs and gradients match eager mode on torch's kernels."""
    import shutil

    from torch._inductor import compile_fx, cpp_builder

    try:
        compiler = cpp_builder.get_cpp_compiler()
    except Exception as error:  # noqa: BLE001 - any failure here means no inductor on this machine
        pytest.skip(f"torch's inductor finds no C++ compiler here: {error}")
    if shutil.which(compiler) is None:
        pytest.skip(f"torch's inductor C++ compiler {compiler!r} is not installed")
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = nn.Sequential(  # small: inductor's C++ compile dominates the time
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 8, 3, stride=2),
        nn.AvgPool2d(2), nn.Flatten(), nn.Linear(8, 3))
    graphs = []

    def backend(gm, example_inputs):
        graphs.append(gm)
        return compile_fx.compile_fx(gm, example_inputs)

    x = tensor((2, 1, 12, 12), torch.float32)
    eager_x = x.clone().requires_grad_()
    eager = model(eager_x)
    eager.sum().backward()
    eager_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    compiled_x = x.clone().requires_grad_()
    with ct.enabled():
        compiled = torch.compile(model, backend=backend, fullgraph=True, dynamic=False)(compiled_x)
        compiled.sum().backward()
    assert len(graphs) == 1
    targets = {str(n.target) for n in graphs[0].graph.nodes if n.op == "call_function"}
    assert {"convforge.conv2d", "convforge.max_pool2d_with_indices", "convforge.avg_pool2d",
            "convforge.linear"} <= targets, targets
    torch.testing.assert_close(compiled, eager)
    torch.testing.assert_close(compiled_x.grad, eager_x.grad)
    for p, g in zip(model.parameters(), eager_grads):
        torch.testing.assert_close(p.grad, g)


def test_torch_compile_follows_the_switch():
    """A model compiled once runs convforge's ops while the switch is on and torch's when it is
    off, whichever was first: dynamo guards on the torch function mode stack and recompiles."""
    torch._dynamo.reset()
    graphs = []

    def backend(gm, example_inputs):
        graphs.append({str(n.target) for n in gm.graph.nodes if n.op == "call_function"})
        return gm.forward

    torch.manual_seed(0)
    model = torch.compile(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(8, 2)), backend=backend)
    x = tensor((1, 1, 4, 4), torch.float32)
    native = model(x)
    with ct.enabled():
        switched = model(x)
    again = model(x)
    assert len(graphs) == 2
    assert not any(t.startswith("convforge.") for t in graphs[0])
    assert {"convforge.conv2d", "convforge.linear"} <= graphs[1]
    torch.testing.assert_close(switched, native)
    assert torch.equal(again, native)


@pytest.mark.skipif(not (torch.cuda.is_available() and "cuda" in ct._DEVICES),
                    reason="no CUDA device, or a convforge build without CUDA kernels")
def test_cuda_tensors_run_on_the_cuda_kernels():
    """On a GPU machine: CUDA tensors under the switch run convforge's CUDA kernels, forward and
    backward, and match the CPU run."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.AvgPool2d(2),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))
    x = tensor((2, 3, 16, 16), torch.float32, 1)
    results = []
    for device in ("cpu", "cuda"):
        model.to(device).zero_grad()
        with ct.enabled():
            out = model(x.to(device))
            out.sum().backward()
        assert ran_on_convforge(out)
        results.append([out.detach().cpu(), *(p.grad.cpu() for p in model.parameters())])
    assert ct.dispatched == {"conv2d": 2, "max_pool2d": 2, "avg_pool2d": 2, "adaptive_avg_pool2d": 2, "linear": 2}
    assert not ct.fallbacks
    for cpu, gpu in zip(*results):
        torch.testing.assert_close(gpu, cpu)
