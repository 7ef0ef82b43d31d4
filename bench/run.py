"""The runner: for each thread count and each (case, pass), build the problem, check every
contestant against the reference, time them interleaved, and turn the timings into result rows."""

import contextlib
import sys
import time

import numpy as np

import convforge

from . import machine, ops, timing
from .check import compare, compare_formats, memory_format

SAMPLES = 7
LLC_BYTES = machine.last_level_cache_bytes()
MIN_SAMPLE_S = 0.02


@contextlib.contextmanager
def matched_threads(n, peers):
    """convforge, NumPy's BLAS (threadpoolctl) and torch all use `n` threads inside the block."""
    previous = convforge.get_num_threads()
    convforge.set_num_threads(n)
    torch_previous = None
    if "torch" in peers:
        torch = ops._torch()
        torch_previous = torch.get_num_threads()
        torch.set_num_threads(n)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - in the [bench] and [test] extras
        limits = contextlib.nullcontext()
    else:
        limits = threadpool_limits(limits=n, user_api="blas")
    try:
        with limits:
            yield
    finally:
        convforge.set_num_threads(previous)
        if torch_previous is not None:
            ops._torch().set_num_threads(torch_previous)


def effective_peaks(peaks):
    """threads -> the ceilings used for % of peak. The FMA peak is per core: when the probe at t
    threads ran on a busy machine (below 80 % of t times the one-thread figure), t times the
    one-thread figure is used instead and the fact is recorded."""
    out = {}
    one = peaks.get(1) or peaks.get("1")
    for t, v in peaks.items():
        t = int(t)
        v = dict(v)
        if one and v["fma_gflops"] < 0.8 * t * one["fma_gflops"]:
            v["fma_gflops_measured"] = v["fma_gflops"]
            v["fma_gflops"] = t * one["fma_gflops"]
            v["fma_probe_disturbed"] = True
        out[t] = v
    return out


def build_problem(case, pass_, peers, seed=0):
    rng = np.random.default_rng([seed, sum(map(ord, case.name)), len(pass_)])
    if case.suite == "train":
        from . import train

        return train.problem(case, pass_, peers, rng)
    return ops.FAMILIES[case.suite](case, pass_, peers, rng)


def check_problem(case, pass_, problem):
    """Raises check.CheckError unless every contestant agrees with the reference, and a
    contestant with `check_layout` returns the memory format its peers in the same layout do.
    Returns label -> seconds of the checked call (a first warm-up)."""
    first_call, formats = {}, {}
    for impl in problem.impls:
        label = f"{case.suite} {case.name} {pass_}: {impl.label}"
        if problem.verify is not None:
            problem.verify(label, impl)
        elif not impl.is_reference:
            start = time.perf_counter()
            result = impl.fn()
            first_call[impl.label] = time.perf_counter() - start
            outputs = impl.outputs(result)
            compare(label, outputs, problem.expected)
            if impl.layout:
                formats[impl.label] = [memory_format(o) for o in outputs]
    for impl in problem.impls:
        if impl.check_layout:
            peers = {i.label: formats[i.label] for i in problem.impls
                     if i.who != impl.who and i.layout == impl.layout and i.label in formats}
            compare_formats(f"{case.suite} {case.name} {pass_}: {impl.label}", formats[impl.label], problem.expected,
                            peers)
    return first_call


def measure(case, pass_, problem, threads, peaks, samples=SAMPLES, min_sample_s=MIN_SAMPLE_S, first_call=None,
            device=None):
    """Times the checked problem; returns one result row per contestant (best variant). With a
    `device` (bench/device.py) the calls are timed by its events and the check's call, timed on
    the host while the GPU ran on, does not calibrate."""
    stats = timing.interleaved({impl.label: impl.fn for impl in problem.impls}, samples=samples,
                               min_sample_s=min_sample_s, first_call=None if device else first_call,
                               settle_s=timing.SETTLE_S if threads > 1 else 0.0,
                               timed=device.timed if device else None)
    by_who = {}
    for impl in problem.impls:
        by_who.setdefault(impl.who, []).append(impl)
    ceiling = peaks.get(threads, {})
    cache_resident = bool(case.bound == "memory" and problem.bytes and LLC_BYTES and problem.bytes < LLC_BYTES
                          and device is None)  # the CPU's cache
    rows = []
    for who, impls in by_who.items():
        best = min(impls, key=lambda i: stats[i.label].median)
        row = {
            "suite": case.suite,
            "shape": case.name,
            "description": case.describe(),
            "pass": pass_,
            "threads": threads,
            "candidate": who,
            "variant": best.variant,
            "variants": {i.layout or i.variant: stats[i.label].median for i in impls} if len(impls) > 1 else {},
            **timing_fields(stats[best.label], problem, case.bound, ceiling),
            "bound": case.bound,
            "oracle": problem.oracle,
            # A memory-bound case whose data fit in the last-level cache is not limited by DRAM:
            # its % of DRAM bandwidth can exceed 100 %.
            "cache_resident": cache_resident,
        }
        if any(i.layout for i in impls):  # the layout suites: every memory format's own figures
            row["layout"] = best.layout
            row["layouts"] = {i.layout: {"variant": i.variant, **timing_fields(stats[i.label], problem, case.bound, ceiling)}
                              for i in impls if i.layout}
        if device is not None:
            row["device"] = device.name
        rows.append(row)
    return with_ratios(rows)


def timing_fields(s, problem, bound, ceiling):
    """The JSON fields of one contestant's timings: statistics, rates and % of the ceiling."""
    fields = {
        "median_s": s.median,
        "q1_s": s.q1,
        "q3_s": s.q3,
        "min_s": s.min,
        "max_s": s.max,
        "spread": s.spread,
        "samples": s.samples,
        "calls_per_sample": s.reps,
        "noisy": s.noisy,
        "gflops": problem.flops / s.median * 1e-9 if problem.flops else None,
        "gbps": problem.bytes / s.median * 1e-9 if problem.bytes else None,
        "items_per_s": problem.items / s.median if problem.items else None,
    }
    fields["pct_peak"] = pct_peak(fields, bound, ceiling)
    return fields


def pct_peak(fields, bound, ceiling):
    """% of the FMA peak (compute-bound) or of the DRAM triad bandwidth (memory-bound); None if unknown."""
    if bound == "compute" and fields.get("gflops") and ceiling.get("fma_gflops"):
        return 100.0 * fields["gflops"] / ceiling["fma_gflops"]
    if bound == "memory" and fields.get("gbps") and ceiling.get("triad_gbps"):
        return 100.0 * fields["gbps"] / ceiling["triad_gbps"]
    return None


def with_ratios(rows):
    """convforge's speed-ups over each peer, from the rows' median times (peer time / convforge
    time; > 1 means convforge is faster), set on convforge's row: `ratios` compares the best of
    each (the best layout of each where there are layouts), `layout_ratios` each layout with the
    peer in the same layout (convforge NCHW vs torch NCHW, convforge NHWC vs torch channels_last)."""
    base = next((r for r in rows if r["candidate"] == "convforge"), None)
    for r in rows:
        r["ratios"] = {}
    if base is None:
        return rows
    base["ratios"] = {r["candidate"]: r["median_s"] / base["median_s"] for r in rows if r is not base}
    if "layouts" in base:
        base["layout_ratios"] = {
            layout: {r["candidate"]: r["layouts"][layout]["median_s"] / mine["median_s"]
                     for r in rows if r is not base and layout in r.get("layouts", {})}
            for layout, mine in base["layouts"].items()}
    return rows


def run_device(selected, device, samples=SAMPLES, min_sample_s=MIN_SAMPLE_S, log=None):
    """Every (case, pass) of `selected` on a GPU device (bench/device.py): convforge against torch
    on the device, checked, then timed by the device's events. Returns the result rows."""
    from . import device as devices

    log = log or (lambda msg: print(msg, file=sys.stderr))
    rows = []
    with device.context():
        for case, pass_ in selected:
            log(f"{case.suite} {case.name} {pass_} ({device.name}) ...")
            problem = devices.build_problem(case, pass_, device)
            check_problem(case, pass_, problem)
            device.synchronize()
            rows += measure(case, pass_, problem, 1, {}, samples, min_sample_s, device=device)
            del problem
    return rows


def run(selected, threads, peers, peaks, samples=SAMPLES, min_sample_s=MIN_SAMPLE_S, log=None, on_rows=None):
    """Every (case, pass) of `selected` at every thread count; returns all result rows."""
    log = log or (lambda msg: print(msg, file=sys.stderr))
    rows = []
    for t in threads:
        with matched_threads(t, peers):
            for case, pass_ in selected:
                log(f"{case.suite} {case.name} {pass_} ({t} thread{'s' if t > 1 else ''}) ...")
                problem = build_problem(case, pass_, peers)
                first_call = check_problem(case, pass_, problem)
                new = measure(case, pass_, problem, t, peaks, samples, min_sample_s, first_call)
                for note in problem.notes:
                    for r in new:
                        r.setdefault("notes", []).append(note)
                rows += new
                if on_rows:
                    on_rows(new)
                del problem
    return rows
