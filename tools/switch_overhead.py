#!/usr/bin/env python3
"""Per-call overhead of convforge.torch's switch (a TorchFunctionMode), on tiny tensors so that
the call overhead is all there is to time.

    python tools/switch_overhead.py [--samples 301] [--calls 200]

For each call: torch's own time, the time inside ``convforge.torch.enabled()``, and for the
calls the switch routes, the time of calling ``convforge.torch``'s function directly; the
switch's cost is the difference. One thread; each figure is the minimum over interleaved samples
(short samples, so that the minimum misses other processes' time slices on a busy machine)."""

import argparse
import timeit

import torch
import torch.nn.functional as F

import convforge
import convforge.torch as ct


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=301)
    parser.add_argument("--calls", type=int, default=200, help="calls per sample")
    args = parser.parse_args()
    convforge.set_num_threads(1)
    torch.set_num_threads(1)
    a = torch.ones(4)
    x, w = torch.randn(1, 1, 4, 4), torch.randn(1, 1, 3, 3)
    xl, wl = torch.randn(2, 8), torch.randn(4, 8)
    cases = {
        "torch.add (not routed)": (lambda: torch.add(a, a), None),
        "F.relu (not routed)": (lambda: F.relu(a), None),
        "F.conv2d 1x1x4x4, 3x3": (lambda: F.conv2d(x, w), lambda: ct.conv2d(x, w)),
        "F.max_pool2d 1x1x4x4, 2": (lambda: F.max_pool2d(x, 2), lambda: ct.max_pool2d(x, 2)),
        "F.linear 2x8 -> 4": (lambda: F.linear(xl, wl), lambda: ct.linear(xl, wl)),
    }

    def time(f):
        return timeit.timeit(f, number=args.calls) / args.calls * 1e6

    print(f"torch {torch.__version__}, convforge {convforge.__version__}, 1 thread, microseconds per call")
    print("| call | torch | switch on | convforge.torch direct | the switch adds |")
    print("|---|---|---|---|---|")
    for name, (call, direct) in cases.items():
        best = {"torch": float("inf"), "switch": float("inf"), "direct": float("inf")}
        for _ in range(args.samples):
            best["torch"] = min(best["torch"], time(call))
            with ct.enabled():
                best["switch"] = min(best["switch"], time(call))
            if direct is not None:
                best["direct"] = min(best["direct"], time(direct))
        base = best["direct"] if direct is not None else best["torch"]
        shown = f"{best['direct']:.1f}" if direct is not None else "-"
        print(f"| `{name}` | {best['torch']:.1f} | {best['switch']:.1f} | {shown} | {best['switch'] - base:.1f} |")


if __name__ == "__main__":
    main()
