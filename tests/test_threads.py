"""Thread safety: every op from 8 Python threads at once (the kernels release the GIL) gives the
results it gives serially, bit for bit; set_num_threads while others compute is safe; results
are bitwise identical run to run and for any thread count (every CPU kernel splits work by shape
only and reduces in a fixed order; see the README's reliability section)."""

import threading
import time

import numpy as np
import pytest

import convforge
from helpers import rng

BACKENDS = convforge.info()["backends"]


def make_data(seed, small=False):
    r = rng("threads", seed)
    f = lambda *s: r.standard_normal(s).astype(np.float32)  # noqa: E731
    if small:  # the emulated CUDA backend is slow
        return dict(a=f(9, 7), b=f(7, 5), x=f(1, 4, 6, 5), w=f(4, 2, 3, 3), bias=f(4), xd=f(1, 3, 6, 5),
                    wd=f(3, 1, 3, 3))
    return dict(a=f(70, 45), b=f(45, 33), x=f(2, 8, 13, 11), w=f(12, 4, 3, 3), bias=f(12),
                xd=f(2, 6, 13, 11), wd=f(6, 1, 3, 3))


def run_ops(d):
    """Every op and gradient on one data set, as a dict of arrays."""
    out = {"gemm": convforge.gemm(d["a"], d["b"]),
           "gemm_t": convforge.gemm(d["a"], d["a"], trans_b=True, alpha=0.5)}
    y = convforge.conv2d(d["x"], d["w"], d["bias"], padding=1, groups=2)
    out["conv"] = y
    gi, gw, gb = convforge.conv2d_backward(y, d["x"], d["w"], padding=1, groups=2)
    out.update(conv_gi=gi, conv_gw=gw, conv_gb=gb)
    yd = convforge.conv2d(d["xd"], d["wd"], None, stride=2, padding=1, groups=d["xd"].shape[1])
    out["dw"] = yd
    out["dw_gi"], out["dw_gw"], _ = convforge.conv2d_backward(
        yd, d["xd"], d["wd"], stride=2, padding=1, groups=d["xd"].shape[1])
    m, idx = convforge.max_pool2d(d["x"], 3, 2, 1, return_indices=True)
    out.update(max=m, max_idx=idx, max_g=convforge.max_pool2d_backward(m, d["x"], idx, 3, 2, 1))
    a = convforge.avg_pool2d(d["x"], 3, 2, 1, ceil_mode=True, count_include_pad=False)
    out.update(avg=a, avg_g=convforge.avg_pool2d_backward(a, d["x"], 3, 2, 1, ceil_mode=True,
                                                          count_include_pad=False))
    return out


def assert_same(got, want, what):
    assert got.keys() == want.keys()
    for k in want:
        assert got[k].tobytes() == want[k].tobytes(), f"{what}: {k} differs bitwise"


def in_threads(n, fn):
    """fn(i) in n threads started together; returns the results, re-raises the first error."""
    results, errors = [None] * n, []
    start = threading.Barrier(n)

    def body(i):
        try:
            start.wait()
            results[i] = fn(i)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


@pytest.mark.parametrize("backend", BACKENDS)
def test_eight_threads_match_serial(backend):
    small = backend != "cpu"
    data = [make_data(i, small) for i in range(8)]
    with convforge.host_backend(backend):
        serial = [run_ops(d) for d in data]

    def work(i):
        with convforge.host_backend(backend):  # per Python thread
            return [run_ops(data[i]) for _ in range(2 if small else 5)]

    for i, runs in enumerate(in_threads(8, work)):
        for r in runs:
            assert_same(r, serial[i], f"thread {i} on {backend}")


def test_threads_mixing_backends():
    """The backend is per Python thread: threads on 'cpu' and 'cuda-emulated' at once."""
    data = make_data(3, small=True)
    want = {b: None for b in BACKENDS}
    for b in BACKENDS:
        with convforge.host_backend(b):
            want[b] = run_ops(data)

    def work(i):
        b = BACKENDS[i % len(BACKENDS)]
        with convforge.host_backend(b):
            return b, run_ops(data)

    for b, got in in_threads(8, work):
        assert_same(got, want[b], f"backend {b}")


def test_set_num_threads_while_computing(threads):
    data = [make_data(i) for i in range(4)]
    threads(1)
    serial = [run_ops(d) for d in data]
    stop = threading.Event()

    def toggler():
        k = 0
        while not stop.is_set():
            threads(1 + k % 4)
            k += 1
            time.sleep(0.0005)

    t = threading.Thread(target=toggler)
    t.start()
    try:
        results = in_threads(4, lambda i: [run_ops(data[i]) for _ in range(5)])
    finally:
        stop.set()
        t.join()
    for i, runs in enumerate(results):
        for r in runs:
            assert_same(r, serial[i], f"thread {i} while set_num_threads changed")


def test_bitwise_across_runs_and_thread_counts(threads):
    d = make_data(11)
    threads(1)
    want = run_ops(d)
    for n in (1, 2, 3, 4, 8):
        threads(n)
        for _ in range(2):
            assert_same(run_ops(d), want, f"{n} threads")


def test_ops_release_the_gil(threads):
    """While one long op runs in a thread, the main thread keeps running Python code: with the
    GIL held for the whole call it would be starved for the call's duration."""
    threads(1)
    r = rng("gil")
    a = r.standard_normal((700, 700))
    x = r.standard_normal((4, 64, 56, 56)).astype(np.float32)
    w = r.standard_normal((64, 64, 3, 3)).astype(np.float32)
    for name, op in [("gemm", lambda: convforge.gemm(a, a)),
                     ("conv2d", lambda: convforge.conv2d(x, w, padding=1)),
                     ("conv2d_backward", lambda: convforge.conv2d_backward(
                         np.ones((4, 64, 56, 56), np.float32), x, w, padding=1))]:
        op()  # warm up (workspaces)
        t0 = time.perf_counter()
        op()
        duration = time.perf_counter() - t0
        started = threading.Event()
        worker = threading.Thread(target=lambda: (started.set(), op()))
        spins = 0
        worker.start()
        started.wait()
        t0 = time.perf_counter()
        while worker.is_alive():
            spins += 1
        spun = time.perf_counter() - t0
        worker.join()
        # The main thread ran for most of the op (a held GIL allows only switch-interval slivers
        # before and after the call).
        assert spins > 1000 and spun > 0.5 * duration, (name, spins, spun, duration)
