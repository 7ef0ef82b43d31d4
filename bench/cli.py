"""python -m bench [gemm|conv2d|pool2d|train|all] [options]: check, time and compare convforge's
kernels against NumPy and PyTorch. See bench/README.md."""

import argparse
import json
import sys
import time
from pathlib import Path

from . import machine, run, suites
from .check import CheckError
from .device import DEVICES
from .ops import PEERS

SCHEMA = "convforge-bench/1"
RESULTS_DIR = Path(__file__).resolve().parent / "results"


def parser():
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark convforge's kernels against NumPy and PyTorch: every result is checked against "
                    "the float64 reference first, then contestants are timed interleaved in one process.")
    p.add_argument("suite", nargs="?", default="all", choices=(*suites.ALL, "all"), help="which suite (default: all)")
    p.add_argument("--quick", action="store_true", help="a representative subset that runs in about a minute "
                   "(one thread unless --threads is given)")
    p.add_argument("--threads", default=None, help="comma-separated thread counts (default: 1,2; with --quick: 1)")
    p.add_argument("--against", default=None, help="peers, comma-separated (default: numpy,torch; on a GPU device: torch)")
    p.add_argument("--device", default="cpu", choices=DEVICES,
                   help="cpu (default); cuda: convforge's CUDA kernels against torch's CUDA ops (cuBLAS, cuDNN), "
                        "timed with CUDA events, suites gemm, conv2d and pool2d; cuda-emulated: the same on the "
                        "emulator without a GPU (tests the mode; its timings mean nothing)")
    p.add_argument("--shapes", default=None, help="only these cases, by name, comma-separated")
    p.add_argument("--pass", dest="passes", default=None, help="fwd, bwd or fwd,bwd (default: every pass a case has)")
    p.add_argument("--samples", type=int, default=run.SAMPLES, help="timed samples per contestant (at least 7)")
    p.add_argument("--min-sample-ms", type=float, default=run.MIN_SAMPLE_S * 1e3,
                   help="calls are batched so one sample lasts at least this long (default: 20)")
    p.add_argument("--json", default=None, metavar="FILE", help="write the results and the machine description")
    p.add_argument("--plot", default=None, metavar="FILE.png", help="plot convforge's speed-up over each peer")
    p.add_argument("--record", action="store_true", help="write bench/results/<machine kind>/<suite>.json and "
                   "regenerate the plot and README table from them (python -m bench.report)")
    p.add_argument("--results-dir", default=str(RESULTS_DIR), metavar="DIR",
                   help="where --record writes (default: bench/results)")
    p.add_argument("--list", action="store_true", help="list the cases and exit")
    return p


def main(argv=None):
    args = parser().parse_args(argv)
    on_device = args.device != "cpu"
    if on_device:
        from . import device as devices

        table = devices.SUITES
    else:
        table = suites.SUITES
    names = tuple(table) if args.suite == "all" else (args.suite,)
    against = args.against if args.against is not None else ("torch" if on_device else ",".join(PEERS))
    try:
        if args.suite not in (*table, "all"):
            raise ValueError(f"--device {args.device}: expected a suite of {', '.join(table)}, got {args.suite!r}")
        peers = () if against.strip() in ("", "none") else suites.parse_list(against, PEERS, "--against")
        if on_device and peers != ("torch",):
            raise ValueError(f"--against: on --device {args.device} the peer is torch (cuBLAS, cuDNN), got {against!r}")
        threads = suites.parse_threads(args.threads or ("1" if args.quick else "1,2"))
        passes = suites.parse_list(args.passes, suites.PASSES, "--pass") if args.passes else None
        shapes = suites.parse_list(args.shapes, [c.name for s in names for c in table[s]], "--shapes") \
            if args.shapes else None
        if args.samples < 7:
            raise ValueError(f"--samples: expected at least 7 (a median and a spread need them), got {args.samples}")
        if args.min_sample_ms <= 0:
            raise ValueError(f"--min-sample-ms: expected a positive number, got {args.min_sample_ms}")
    except ValueError as e:
        print(f"python -m bench: error: {e}", file=sys.stderr)
        return 2
    selected = suites.select(names, quick=args.quick, shapes=shapes, passes=passes, table=table)
    if args.list:
        for case, pass_ in selected:
            print(f"{case.suite:7} {case.name:22} {pass_:5} {case.describe()}")
        return 0
    if not selected:
        print("python -m bench: nothing selected", file=sys.stderr)
        return 2

    from rich.console import Console

    # Piped: wide enough for the layout suites' tables (two times, % peaks and algorithms each).
    console = Console(stderr=False) if sys.stdout.isatty() else Console(width=200)
    err = Console(stderr=True)
    started = time.time()
    if on_device:
        return main_device(args, argv, names, selected, console, err, started)
    err.print(f"[dim]probing the machine (FMA peak, DRAM bandwidth) for threads {','.join(map(str, threads))}...[/]")
    load = machine.load_average()
    if load is not None and load > 0.5:
        err.print(f"[yellow]warning: the machine is busy (load average {load:.1f} on {machine.os.cpu_count()} CPUs): "
                  "expect noisy rows, and 2-thread figures below 1-thread ones[/]")
    peaks = run.effective_peaks(machine.probe(threads, quick=args.quick))
    info = machine.describe(threads, peaks=peaks)
    for t, v in peaks.items():
        err.print(f"[dim]{t} thread(s): FP32 FMA peak {v['fma_gflops']:.0f} GFLOP/s ({v['isa']}), "
                  f"DRAM triad {v['triad_gbps']:.1f} GB/s, copy {v['copy_gbps']:.1f} GB/s[/]")
    try:
        rows = run.run(selected, threads, peers, peaks, samples=args.samples, min_sample_s=args.min_sample_ms / 1e3,
                       log=lambda m: err.print(f"[dim]{m}[/]"))
    except CheckError as e:
        err.print(f"[bold red]CHECK FAILED, nothing was timed for this case:[/] {e}")
        return 1
    from . import output

    output.tables(rows, peers, console)
    doc = {
        "schema": SCHEMA,
        "command": "python -m bench " + " ".join(sys.argv[1:] if argv is None else argv),
        "settings": {"suites": list(names), "quick": args.quick, "threads": list(threads), "peers": list(peers),
                     "samples": args.samples, "min_sample_s": args.min_sample_ms / 1e3,
                     "noisy_spread": run.timing.NOISY_SPREAD},
        **info,
        "elapsed_s": round(time.time() - started, 1),
        "load_average_1min_after": machine.load_average(),
        "results": rows,
        "summary": output.summary(rows),
    }
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")
        err.print(f"[dim]wrote {args.json}[/]")
    if args.plot:
        output.plot(rows, peers, args.plot, title=plot_title(doc))
        err.print(f"[dim]wrote {args.plot}[/]")
    if args.record:
        from . import report

        for written in record(doc, names, args.results_dir):
            err.print(f"[dim]wrote {written}[/]")
        for written in report.main(["--results", args.results_dir]):
            err.print(f"[dim]wrote {written}[/]")
    err.print(f"[dim]done in {time.time() - started:.0f} s[/]")
    return 0


def main_device(args, argv, names, selected, console, err, started):
    """--device cuda / cuda-emulated: convforge against torch on the device, timed by its events."""
    from . import device as devices
    from . import output

    try:
        device = devices.Device(args.device)
    except devices.DeviceError as e:
        err.print(f"[bold red]python -m bench: {e}[/]")
        return 2
    m, sw = device.describe()
    err.print(f"[dim]{args.device}: {m['gpu']} ({m['kind']})[/]")
    try:
        rows = run.run_device(selected, device, samples=args.samples, min_sample_s=args.min_sample_ms / 1e3,
                              log=lambda msg: err.print(f"[dim]{msg}[/]"))
    except CheckError as e:
        err.print(f"[bold red]CHECK FAILED, nothing was timed for this case:[/] {e}")
        return 1
    output.tables(rows, ["torch"], console)
    import datetime

    doc = {
        "schema": SCHEMA,
        "command": "python -m bench " + " ".join(sys.argv[1:] if argv is None else argv),
        "device": args.device,
        "settings": {"suites": list(names), "quick": args.quick, "threads": [1], "peers": ["torch"],
                     "samples": args.samples, "min_sample_s": args.min_sample_ms / 1e3,
                     "noisy_spread": run.timing.NOISY_SPREAD, "timer": "cuda events" if device.gpu else "host clock"},
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": m,
        "software": sw,
        "elapsed_s": round(time.time() - started, 1),
        "results": rows,
        "summary": output.summary(rows),
    }
    title = f"{m['gpu']} ({args.device}), convforge {sw['convforge']}, torch {sw['torch']}, {doc['date'][:10]}"
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")
        err.print(f"[dim]wrote {args.json}[/]")
    if args.plot:
        output.plot(rows, ["torch"], args.plot, title=title)
        err.print(f"[dim]wrote {args.plot}[/]")
    if args.record:  # the JSON and the plot; the README's tables are of CPU machines (bench.report)
        written = record(doc, names, args.results_dir)
        try:
            output.plot(rows, ["torch"], written[0].parent / "speedup.png", title=title)
            written.append(written[0].parent / "speedup.png")
        except ImportError:  # a GPU machine without matplotlib still records the numbers
            err.print("[yellow]no matplotlib: the plot was not drawn[/]")
        for path in written:
            err.print(f"[dim]wrote {path}[/]")
    err.print(f"[dim]done in {time.time() - started:.0f} s[/]")
    return 0


def plot_title(doc):
    m, s = doc["machine"], doc["software"]
    return (f"{m['cpu_model']} ({m['microarchitecture']}, {m['logical_cpus']} CPUs), convforge {s['convforge']} "
            f"[{s['isa']}], NumPy {s['numpy']}, torch {s.get('torch')}, {doc['date'][:10]}")


def record(doc, names, results_dir=RESULTS_DIR):
    """Splits a run by suite into bench/results/<machine kind>/<suite>.json."""
    out_dir = Path(results_dir) / doc["machine"]["kind"]
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for suite in names:
        rows = [r for r in doc["results"] if r["suite"] == suite]
        if not rows:
            continue
        part = dict(doc, results=rows)
        if "summary" in doc:
            part["summary"] = [s for s in doc["summary"] if s["suite"] == suite]
        part["settings"] = dict(doc["settings"], suites=[suite])
        path = out_dir / f"{suite}.json"
        path.write_text(json.dumps(part, indent=1) + "\n")
        written.append(path)
    return written
