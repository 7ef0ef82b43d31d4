"""Timing: interleaved samples of several callables in one process, and their statistics.

Each callable is warmed up, then timed in rounds A B C A B C ... so that a slow phase of a
shared machine hits every contestant alike. A sample is the mean time of `reps` back-to-back
calls, with `reps` chosen so that one sample lasts at least `min_sample_s` (small calls are
batched; the timer's resolution and the loop's overhead then do not matter).

With more than one thread, every contestant brings its own thread pool, and idle pools spin
before they sleep (OpenBLAS for 2**28 cycles, ~0.1 s): a sample taken right after another
library's call would share the cores with its spinning workers. So each sample then starts
after a pause of `settle_s`, long enough for the previous pool to park.
"""

import math
import time
from dataclasses import dataclass

# Longer than OpenBLAS's default spin-wait (2**28 cycles) at 2 GHz and above.
SETTLE_S = 0.2

# A spread wider than this fraction of the median (interquartile range / median) means the
# machine was too busy for the number to be trusted; differences under ~20 % are noise anyway.
NOISY_SPREAD = 0.20


@dataclass(frozen=True)
class Stats:
    """Per-call seconds over the samples of one callable."""

    median: float
    q1: float
    q3: float
    min: float
    max: float
    samples: int
    reps: int = 1  # calls per sample

    @property
    def iqr(self):
        return self.q3 - self.q1

    @property
    def spread(self):
        """Interquartile range relative to the median."""
        return self.iqr / self.median if self.median > 0 else math.inf

    @property
    def noisy(self):
        return self.spread > NOISY_SPREAD


def quantile(sorted_values, q):
    """Linear-interpolation quantile (NumPy's default) of an ascending list."""
    if not sorted_values:
        raise ValueError("quantile: expected at least one value, got none")
    pos = (len(sorted_values) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def summarize(samples, reps=1):
    values = sorted(float(s) for s in samples)
    if not values:
        raise ValueError("samples: expected at least one sample, got none")
    return Stats(
        median=quantile(values, 0.5),
        q1=quantile(values, 0.25),
        q3=quantile(values, 0.75),
        min=values[0],
        max=values[-1],
        samples=len(values),
        reps=reps,
    )


def _timed(fn, reps, clock):
    start = clock()
    for _ in range(reps):
        fn()
    return (clock() - start) / reps


def interleaved(fns, samples=7, min_sample_s=0.02, warmup_s=0.05, clock=time.perf_counter, first_call=None,
                settle_s=0.0, sleep=time.sleep, timed=None):
    """Times every callable of `fns` (name -> zero-argument callable) interleaved; returns
    name -> Stats of seconds per call. At least `samples` samples each. `first_call` (name ->
    seconds) gives calls already made (the check): one that took >= warmup_s was the warm-up.
    `settle_s`: a pause before each sample (and warm-up) that follows another contestant.
    `timed(fn, reps)`: seconds per call of `reps` calls (default: the host clock around them;
    on a GPU, events on the stream, bench/device.py)."""
    if samples < 1:
        raise ValueError(f"samples: expected a positive integer, got {samples}")
    if timed is None:
        timed = lambda fn, reps: _timed(fn, reps, clock)  # noqa: E731
    reps = {}

    def settle():
        if settle_s > 0 and len(fns) > 1:
            sleep(settle_s)

    for name, fn in fns.items():
        settle()
        # Warm up (caches, page faults, lazy initialization) and calibrate from the last call.
        # The fastest warm-up call calibrates: a call slowed by a busy machine must not shrink
        # the samples below min_sample_s.
        last = (first_call or {}).get(name, 0.0)
        spent, calls, fastest = last, int(last > 0), last if last > 0 else math.inf
        while calls < 1 or (spent < warmup_s and calls < 1000):
            last = timed(fn, 1)
            spent += last
            calls += 1
            fastest = min(fastest, last)
        reps[name] = max(1, math.ceil(min_sample_s / max(fastest, 1e-9)))
    times = {name: [] for name in fns}
    for _ in range(samples):
        for name, fn in fns.items():
            settle()
            times[name].append(timed(fn, reps[name]))
    return {name: summarize(times[name], reps[name]) for name in fns}
