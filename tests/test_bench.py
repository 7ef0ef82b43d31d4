"""The benchmark harness's own logic: statistics, interleaving, suite parsing and selection, the
check that runs before any timing, the JSON it writes, the README report, and a --quick run on a
tiny suite (so the harness cannot rot). Speed itself is never asserted."""

import json

import numpy as np
import pytest

import convforge
from bench import check, cli, ops, output, report, run, suites, timing

# ---------------------------------------------------------------------------------------------
# Statistics and interleaving


def test_summarize_median_quartiles_and_spread():
    s = timing.summarize([7, 1, 6, 2, 5, 3, 4])
    assert (s.median, s.q1, s.q3, s.min, s.max, s.samples) == (4, 2.5, 5.5, 1, 7, 7)
    assert s.spread == pytest.approx(3 / 4)
    assert s.noisy
    tight = timing.summarize([1.0, 1.01, 0.99, 1.0, 1.02, 0.98, 1.0])
    assert not tight.noisy


def test_quantile_matches_numpy():
    values = sorted(np.random.default_rng(1).uniform(size=11))
    for q in (0.0, 0.25, 0.5, 0.75, 1.0):
        assert timing.quantile(values, q) == pytest.approx(np.quantile(values, q))
    with pytest.raises(ValueError, match="samples"):
        timing.summarize([])


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_interleaved_batches_small_calls_and_alternates():
    clock, order = FakeClock(), []

    def op(name, seconds):
        def fn():
            order.append(name)
            clock.now += seconds
        return fn

    stats = timing.interleaved({"a": op("a", 0.001), "b": op("b", 0.004)}, samples=7, min_sample_s=0.01,
                               warmup_s=0.0, clock=clock)
    assert stats["a"].reps == 10 and stats["b"].reps == 3  # each sample lasts >= 10 ms
    assert stats["a"].median == pytest.approx(0.001) and stats["b"].median == pytest.approx(0.004)
    assert stats["a"].samples == stats["b"].samples == 7
    timed = order[2:]  # after one warm-up call each
    runs = [name for i, name in enumerate(timed) if i == 0 or timed[i - 1] != name]
    assert runs == ["a", "b"] * 7  # A B A B ...: interleaved sample by sample


def test_interleaved_settles_before_each_contestant_but_does_not_time_the_pause():
    clock, events = FakeClock(), []

    def op(name):
        def fn():
            events.append(name)
            clock.now += 0.01
        return fn

    def sleep(seconds):
        events.append("pause")
        clock.now += seconds

    stats = timing.interleaved({"a": op("a"), "b": op("b")}, samples=3, min_sample_s=0.01, warmup_s=0.0,
                               clock=clock, settle_s=0.5, sleep=sleep)
    assert events == ["pause", "a", "pause", "b"] + ["pause", "a", "pause", "b"] * 3
    assert stats["a"].median == pytest.approx(0.01) and stats["b"].median == pytest.approx(0.01)
    # A single contestant has nobody to wait for.
    events.clear()
    timing.interleaved({"a": op("a")}, samples=2, min_sample_s=0.01, warmup_s=0.0, clock=clock, settle_s=0.5,
                       sleep=sleep)
    assert "pause" not in events


# ---------------------------------------------------------------------------------------------
# Suites as data: parsing and selection


def test_suites_cover_the_public_layer_suite():
    names = [c.name for c in suites.CONV2D]
    assert len(names) == 11 and len(set(names)) == 11
    assert {"lenet_conv1", "vgg_conv3_2", "resnet_1x1", "depthwise_3x3"} <= set(names)
    assert [c.params["m"] for c in suites.GEMM if c.name.startswith("square_")] == [128, 256, 512, 1024, 2048, 4096]
    for c in suites.CONV2D:
        p = c.params
        assert p["c_in"] % p["groups"] == 0 and p["c_out"] % p["groups"] == 0
        assert c.describe()
    assert {c.bound for c in suites.POOL2D} == {"memory"}
    assert next(c for c in suites.CONV2D if c.name == "depthwise_3x3").bound == "memory"
    for name, cases in suites.SUITES.items():
        assert any(c.quick for c in cases), f"{name} has no --quick case"


def test_parse_lists_and_threads():
    assert suites.parse_list("torch,numpy,torch", ops.PEERS, "--against") == ("torch", "numpy")
    with pytest.raises(ValueError, match="--against: expected one of numpy, torch, got 'jax'"):
        suites.parse_list("numpy,jax", ops.PEERS, "--against")
    assert suites.parse_threads("1, 2") == (1, 2)
    for bad in ("0", "two", ""):
        with pytest.raises(ValueError, match="--threads"):
            suites.parse_threads(bad)


def test_select_quick_shapes_and_passes():
    quick = suites.select(["conv2d"], quick=True)
    assert quick and all(c.quick for c, _ in quick)
    assert {p for _, p in quick} == {"fwd", "bwd"}
    only = suites.select(["conv2d", "pool2d"], shapes=("vgg_conv5_x", "max_k2s2"), passes=("bwd",))
    assert [(c.name, p) for c, p in only] == [("vgg_conv5_x", "bwd"), ("max_k2s2", "bwd")]
    with pytest.raises(ValueError, match="unknown nope"):
        suites.select(["gemm"], shapes=("nope",))
    assert suites.select(["gemm"], passes=("bwd",)) == []  # GEMM has a forward pass only


def test_cli_rejects_bad_options(capsys):
    assert cli.main(["gemm", "--samples", "3"]) == 2
    assert "--samples: expected at least 7" in capsys.readouterr().err
    assert cli.main(["gemm", "--shapes", "lenet_conv1"]) == 2
    assert "--shapes" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# Check before time


def _gemm_case(name="square_128"):
    return next(c for c in suites.GEMM if c.name == name)


def test_check_accepts_every_contestant_and_rejects_a_wrong_kernel():
    case = _gemm_case("linear_64x400x120")
    problem = run.build_problem(case, "fwd", ops.PEERS)
    run.check_problem(case, "fwd", problem)  # convforge, numpy and torch all agree
    good = problem.impls[0].fn

    def off_by_a_little():
        c = good().copy()
        c[3, 5] += 1e-3 * abs(c[3, 5]) + 1e-3
        return c

    problem.impls[0].fn = off_by_a_little
    with pytest.raises(check.CheckError, match=r"gemm linear_64x400x120 fwd: convforge\[gemm\]: c: 1 of 7680 values"):
        run.check_problem(case, "fwd", problem)


def test_check_exact_outputs_and_nan():
    ref = np.arange(6, dtype=np.float64).reshape(2, 3)
    check.compare("x", [ref.astype(np.float32)], [check.Expected("y", ref, np.abs(ref) + 1, 4)])
    with pytest.raises(check.CheckError, match="values off"):
        check.compare("x", [np.full((2, 3), np.nan, np.float32)], [check.Expected("y", ref, np.abs(ref) + 1, 4)])
    idx = np.arange(6).reshape(2, 3)
    with pytest.raises(check.CheckError, match="indices: 1 of 6 values differ"):
        check.compare("x", [idx[::-1, ::-1].copy()[::-1, ::-1] + (idx == 4)], [check.Expected("indices", idx)])
    with pytest.raises(check.CheckError, match="expected shape"):
        check.compare("x", [ref[:1]], [check.Expected("y", ref, ref, 1)])


def test_a_wrong_kernel_stops_the_run_before_timing(monkeypatch, capsys):
    def wrong_gemm(a, b, c=None, *, out=None, **kwargs):
        out[...] = 0.0
        return out

    def never(*args, **kwargs):
        raise AssertionError("timed a contestant that failed the check")

    monkeypatch.setattr(convforge, "gemm", wrong_gemm)
    monkeypatch.setattr(timing, "interleaved", never)
    assert cli.main(["gemm", "--shapes", "square_128", "--threads", "1"]) == 1
    err = capsys.readouterr().err
    assert "CHECK FAILED" in err and "convforge" in err


def test_effective_peaks_fall_back_to_per_core_figure_when_disturbed():
    peaks = run.effective_peaks({1: dict(fma_gflops=80.0, triad_gbps=10), 2: dict(fma_gflops=90.0, triad_gbps=12)})
    assert peaks[2]["fma_gflops"] == 160.0 and peaks[2]["fma_probe_disturbed"]
    assert peaks[1]["fma_gflops"] == 80.0 and "fma_probe_disturbed" not in peaks[1]


def test_probes_report_plausible_ceilings():
    from convforge import _C

    isa = convforge.info()["isa"]
    assert 0.5 < _C._probe_fma_gflops(isa, 1, 0.02) < 1e4
    assert 0.1 < _C._probe_memory_gbps("triad", 1 << 22, 1, 2) < 1e4
    with pytest.raises(ValueError, match="kind: expected 'copy' or 'triad'"):
        _C._probe_memory_gbps("scale", 1 << 22, 1, 2)
    with pytest.raises(ValueError, match="threads"):
        _C._probe_fma_gflops(isa, 0, 0.01)


# ---------------------------------------------------------------------------------------------
# A --quick run on a tiny suite, its JSON, tables, plot and the README report


RESULT_KEYS = {
    "suite": str, "shape": str, "description": str, "pass": str, "threads": int, "candidate": str, "variant": str,
    "median_s": float, "q1_s": float, "q3_s": float, "min_s": float, "max_s": float, "spread": float,
    "samples": int, "calls_per_sample": int, "noisy": bool, "bound": str, "ratios": dict, "oracle": str,
}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    argv = ["all", "--quick", "--shapes", "square_128,linear_64x400x120,lenet_conv1,max_k2s2_small",
            "--min-sample-ms", "1", "--json", str(out / "out.json"), "--plot", str(out / "out.png")]
    assert cli.main(argv) == 0
    return out, json.loads((out / "out.json").read_text())


def test_quick_run_writes_the_documented_json(quick_run):
    _, doc = quick_run
    assert doc["schema"] == cli.SCHEMA
    assert doc["machine"]["cpu_model"] and doc["machine"]["kind"] and doc["machine"]["flags"]
    assert doc["machine"]["peaks"]["1"]["fma_gflops"] > 0 and doc["machine"]["peaks"]["1"]["triad_gbps"] > 0
    sw = doc["software"]
    assert sw["isa"] == convforge.info()["isa"] and sw["numpy"] == np.__version__ and sw["torch"] and sw["compiler"]
    assert doc["date"] and doc["settings"]["threads"] == [1] and doc["settings"]["samples"] >= 7
    rows = doc["results"]
    for r in rows:
        for key, kind in RESULT_KEYS.items():
            assert isinstance(r[key], kind), (key, r[key])
        assert r["samples"] >= 7 and r["q1_s"] <= r["median_s"] <= r["q3_s"]
    seen = {(r["suite"], r["shape"], r["pass"], r["candidate"]) for r in rows}
    assert ("gemm", "square_128", "fwd", "numpy") in seen and ("gemm", "square_128", "fwd", "torch") in seen
    assert {("conv2d", "lenet_conv1", p, "convforge") for p in ("fwd", "bwd")} <= seen
    assert {("pool2d", "max_k2s2_small", p, "torch") for p in ("fwd", "bwd")} <= seen
    conv_torch = next(r for r in rows if r["shape"] == "lenet_conv1" and r["candidate"] == "torch")
    assert set(conv_torch["variants"]) == {"nchw", "channels_last"}  # best of both layouts
    assert "layouts" not in next(r for r in rows if r["suite"] == "gemm")  # GEMM has one layout
    gemm = next(r for r in rows if r["shape"] == "square_128" and r["candidate"] == "convforge")
    assert gemm["gflops"] > 0 and gemm["pct_peak"] > 0 and set(gemm["ratios"]) == {"numpy", "torch"}
    pool = next(r for r in rows if r["suite"] == "pool2d" and r["candidate"] == "convforge")
    assert pool["gbps"] > 0 and pool["bound"] == "memory"
    assert pool["cache_resident"] is (doc["machine"]["last_level_cache_bytes"] > 8 * 64 * 56 * 56 * 4 * 1.25)
    assert not gemm["cache_resident"]  # only memory-bound cases are judged against DRAM


def _by(rows, suite, shape, pass_, candidate):
    return next(r for r in rows if (r["suite"], r["shape"], r["pass"], r["candidate"]) == (suite, shape, pass_, candidate))


def test_quick_run_times_conv2d_and_pooling_in_both_layouts(quick_run):
    _, doc = quick_run
    rows = doc["results"]
    peak = doc["machine"]["peaks"]["1"]
    for suite, shape in (("conv2d", "lenet_conv1"), ("pool2d", "max_k2s2_small")):
        for pass_ in ("fwd", "bwd"):
            mine, torch = _by(rows, suite, shape, pass_, "convforge"), _by(rows, suite, shape, pass_, "torch")
            numpy = _by(rows, suite, shape, pass_, "numpy")
            assert set(mine["layouts"]) == set(torch["layouts"]) == {"nchw", "channels_last"}
            assert "layouts" not in numpy  # the float64 reference runs on NCHW only
            for layout, figures in mine["layouts"].items():
                assert figures["samples"] >= 7 and figures["q1_s"] <= figures["median_s"] <= figures["q3_s"]
                assert figures["pct_peak"] > 0
                if suite == "conv2d":  # % of the FMA peak, from the FLOP and this layout's own time
                    assert figures["pct_peak"] == pytest.approx(100 * figures["gflops"] / peak["fma_gflops"])
                else:
                    assert figures["pct_peak"] == pytest.approx(100 * figures["gbps"] / peak["triad_gbps"])
            # The row's own figures are its faster layout's.
            assert mine["median_s"] == min(v["median_s"] for v in mine["layouts"].values())
            assert mine["median_s"] == mine["layouts"][mine["layout"]]["median_s"]
            # Speed-ups from the medians: like layout against like layout, and best against best.
            for layout in ("nchw", "channels_last"):
                assert mine["layout_ratios"][layout] == {
                    "torch": pytest.approx(torch["layouts"][layout]["median_s"] / mine["layouts"][layout]["median_s"])}
            assert mine["ratios"]["torch"] == pytest.approx(torch["median_s"] / mine["median_s"])
            assert mine["ratios"]["numpy"] == pytest.approx(numpy["median_s"] / mine["median_s"])
    # The algorithm convforge's chooser runs on each layout, beside its time. lenet_conv1 has one
    # input channel: its NHWC arrays are NCHW ones too, read as NCHW (torch's rule), so both
    # contestants run the NCHW algorithm (the tiny_conv test below covers a true NHWC one).
    args = dict(input_shape=(64, 1, 28, 28), weight_shape=(6, 1, 5, 5))
    for layout in ("nchw", "channels_last"):
        fwd = _by(rows, "conv2d", "lenet_conv1", "fwd", "convforge")["layouts"][layout]["variant"]
        assert fwd == convforge.conv2d_algorithm(**args)
        bwd = _by(rows, "conv2d", "lenet_conv1", "bwd", "convforge")["layouts"][layout]["variant"]
        assert bwd == (f"dx {convforge.conv2d_algorithm(**args, pass_='grad_input')}, "
                       f"dw {convforge.conv2d_algorithm(**args, pass_='grad_weight')}")


def test_quick_run_summary_has_a_geomean_per_column(quick_run):
    _, doc = quick_run
    summary = {(s["suite"], s["pass"], s["threads"]): s for s in doc["summary"]}
    assert set(summary) == {("gemm", "fwd", 1), ("conv2d", "fwd", 1), ("conv2d", "bwd", 1), ("conv2d", "all", 1),
                            ("pool2d", "fwd", 1), ("pool2d", "bwd", 1), ("pool2d", "all", 1)}
    gemm = [r for r in doc["results"] if r["suite"] == "gemm" and r["candidate"] == "convforge"]
    assert summary["gemm", "fwd", 1]["cases"] == 2
    for peer in ("numpy", "torch"):
        assert summary["gemm", "fwd", 1]["geomean"][f"vs_{peer}"] == pytest.approx(
            np.sqrt(gemm[0]["ratios"][peer] * gemm[1]["ratios"][peer]))
        assert summary["gemm", "fwd", 1]["min"][f"vs_{peer}"] == min(r["ratios"][peer] for r in gemm)
    fwd, bwd = (_by(doc["results"], "conv2d", "lenet_conv1", p, "convforge") for p in ("fwd", "bwd"))
    both = summary["conv2d", "all", 1]
    assert list(both["geomean"]) == ["nchw_vs_torch", "channels_last_vs_torch", "best_vs_torch", "best_vs_numpy"]
    assert both["cases"] == 2 and summary["conv2d", "fwd", 1]["cases"] == 1
    for layout in ("nchw", "channels_last"):
        assert summary["conv2d", "fwd", 1]["geomean"][f"{layout}_vs_torch"] == pytest.approx(
            fwd["layout_ratios"][layout]["torch"])
        assert both["geomean"][f"{layout}_vs_torch"] == pytest.approx(
            np.sqrt(fwd["layout_ratios"][layout]["torch"] * bwd["layout_ratios"][layout]["torch"]))
    assert both["geomean"]["best_vs_torch"] == pytest.approx(np.sqrt(fwd["ratios"]["torch"] * bwd["ratios"]["torch"]))


def test_quick_run_plot_is_a_png(quick_run):
    out, _ = quick_run
    data = (out / "out.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert height < 1200 and width < 2000  # one compact grid per suite, side by side


def test_tables_render_every_suite(quick_run):
    from rich.console import Console

    _, doc = quick_run
    console = Console(width=200, record=True)
    output.tables(doc["results"], ["numpy", "torch"], console)
    text = console.export_text()
    # (The layout suites show % peak per layout in place of the rate, which stays in the JSON.)
    for needle in ("gemm: convforge vs numpy, torch", "square_128", "lenet_conv1", "GFLOP/s", "vs torch"):
        assert needle in text
    # conv2d rows name the algorithm the chooser ran, for each pass and layout.
    fwd = convforge.conv2d_algorithm((64, 1, 28, 28), (6, 1, 5, 5))
    assert "algorithm" in text and fwd in text and f"dx {fwd}" in text
    # The layout suites: convforge's and torch's time per layout, the paired ratios, and geomeans.
    conv = text[text.index("conv2d: convforge"):text.index("pool2d: convforge")]
    for needle in ("NCHW", "NHWC", "% peak", "NCHW algorithm", "NHWC algorithm", "torch", "NCHW vs", "NHWC vs",
                   "best vs", "geomean"):
        assert needle in conv, needle
    base = _by(doc["results"], "conv2d", "lenet_conv1", "fwd", "convforge")
    line = next(ln for ln in conv.splitlines() if "lenet_conv1" in ln and "fwd" in ln)
    for x in (*[base["layout_ratios"][layout]["torch"] for layout in ("nchw", "channels_last")], base["ratios"]["torch"]):
        assert output.fmt_ratio(x) in line
    assert "NHWC vs torch: torch channels_last time / convforge NHWC time" in " ".join(text.split())


def test_report_rewrites_only_the_marked_readme_section(quick_run, tmp_path):
    _, doc = quick_run
    kind = doc["machine"]["kind"]
    results = tmp_path / "results"
    written = cli.record(doc, ["gemm", "conv2d", "train"], results)
    assert [p.name for p in written] == ["gemm.json", "conv2d.json"]  # train was not run
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\nbefore\n\n{report.BEGIN}\nstale\n{report.END}\n\nafter\n")
    report.main(["--readme", str(readme), "--results", str(results)])
    text = readme.read_text()
    assert text.startswith("# title\n\nbefore\n\n") and text.endswith("\n\nafter\n") and "stale" not in text
    assert f"### {kind}" in text and "| square_128" in text and "| lenet_conv1" in text
    assert "1T vs torch" in text and "speedup.png" in text
    assert (results / kind / "speedup.png").exists()
    # conv2d: a time and % peak per convforge layout, the paired and best speed-ups, geomean rows.
    for needle in ("1T NCHW ms", "1T NHWC % peak", "1T NCHW vs torch", "1T NHWC vs torch", "1T best vs torch",
                   "| geomean | all |"):
        assert needle in text, needle
    recorded = json.loads((results / kind / "conv2d.json").read_text())
    assert {s["suite"] for s in recorded["summary"]} == {"conv2d"}  # each suite's file has its own summary
    with pytest.raises(ValueError, match="markers"):
        report.rewrite("no markers", "x")


def test_report_and_plot_read_results_recorded_before_the_layouts(quick_run, tmp_path):
    """A recording without layouts (one convforge time per case, torch's better layout) still
    renders: one time column and a `vs peer` column per peer."""
    _, doc = quick_run
    old = dict(doc, results=[{k: v for k, v in r.items() if k not in ("layout", "layouts", "layout_ratios")}
                             for r in doc["results"]])
    del old["summary"]
    conv = dict(old, results=[r for r in old["results"] if r["suite"] == "conv2d"])
    conv["settings"] = dict(old["settings"], suites=["conv2d"])
    table = report.suite_table(conv)
    assert table.splitlines()[0] == "| case | pass | 1T ms | 1T rate | 1T % peak | 1T vs numpy | 1T vs torch |"
    assert "| geomean | all |" in table and "NHWC" not in table
    output.plot(old["results"], ["numpy", "torch"], tmp_path / "old.png")
    assert (tmp_path / "old.png").read_bytes()[:4] == b"\x89PNG"


# ---------------------------------------------------------------------------------------------
# Layouts: the pairing of convforge's and torch's layouts, on fake timings


def _fake_interleaved(medians):
    """timing.interleaved's stand-in: every sample of a contestant lasts medians[(who, layout)];
    the callables are not called."""
    def interleaved(fns, samples=7, **kwargs):
        out = {}
        for label in fns:
            who = label.split("[")[0]
            layout = next((l for l in ("channels_last", "nchw") if l in label), None)
            out[label] = timing.summarize([medians[(who, layout)]] * samples)
        return out
    return interleaved


def test_ratios_are_computed_from_the_timings_of_each_layout(monkeypatch, tmp_path):
    # convforge is faster in NCHW, torch in channels_last: every column tells a different story.
    fwd = {("convforge", "nchw"): 2e-3, ("convforge", "channels_last"): 4e-3, ("torch", "nchw"): 6e-3,
           ("torch", "channels_last"): 3e-3, ("numpy", None): 0.1}
    bwd = {**fwd, ("convforge", "nchw"): 4e-3}  # backward: convforge's layouts tie, torch's best is faster
    calls = []

    def interleaved(fns, samples=7, **kwargs):
        calls.append(set(fns))
        return _fake_interleaved(fwd if len(calls) == 1 else bwd)(fns, samples)

    monkeypatch.setattr(timing, "interleaved", interleaved)
    out = tmp_path / "fake.json"
    assert cli.main(["conv2d", "--quick", "--shapes", "lenet_conv1", "--threads", "1", "--json", str(out)]) == 0
    # Every contestant in one interleaved timing: convforge and torch in both layouts, and numpy.
    assert [len(c) for c in calls] == [5, 5]
    doc = json.loads(out.read_text())
    f, b = (_by(doc["results"], "conv2d", "lenet_conv1", p, "convforge") for p in ("fwd", "bwd"))
    assert f["layout_ratios"] == {"nchw": {"torch": pytest.approx(3.0)}, "channels_last": {"torch": pytest.approx(0.75)}}
    assert f["ratios"] == {"numpy": pytest.approx(50.0), "torch": pytest.approx(1.5)}  # 3 ms / 2 ms, best of each
    assert f["layout"] == "nchw" and f["median_s"] == pytest.approx(2e-3)
    assert b["layout_ratios"]["nchw"]["torch"] == pytest.approx(1.5) and b["ratios"]["torch"] == pytest.approx(0.75)
    assert b["median_s"] == pytest.approx(4e-3)  # a tie: either layout is the best
    t = _by(doc["results"], "conv2d", "lenet_conv1", "fwd", "torch")
    assert t["layout"] == "channels_last" and t["variant"] == "channels_last" and t["median_s"] == pytest.approx(3e-3)
    both = next(s for s in doc["summary"] if s["pass"] == "all")
    assert both["geomean"] == {"nchw_vs_torch": pytest.approx(np.sqrt(3.0 * 1.5)),
                               "channels_last_vs_torch": pytest.approx(0.75),
                               "best_vs_torch": pytest.approx(np.sqrt(1.5 * 0.75)),
                               "best_vs_numpy": pytest.approx(np.sqrt(50.0 * 25.0))}
    assert both["min"]["nchw_vs_torch"] == pytest.approx(1.5) and both["min"]["best_vs_torch"] == pytest.approx(0.75)
    # The table shows the same numbers.
    from rich.console import Console

    console = Console(width=200, record=True)
    output.tables(doc["results"], ["numpy", "torch"], console)
    line = next(ln for ln in console.export_text().splitlines() if "lenet_conv1" in ln and "fwd" in ln)
    cells = [c.strip() for c in line.split("│")]
    assert cells[cells.index("3.00x"):cells.index("3.00x") + 4] == ["3.00x", "0.75x", "1.50x", "50.0x"]
    assert "2.00" in cells and "4.00" in cells and "6.00" in cells and "3.00" in cells


def _tiny_conv():
    return suites._conv("tiny_conv", 2, 4, 6, 5, 8, 3, padding=1)


@pytest.mark.parametrize("pass_", ["fwd", "bwd"])
def test_convforge_runs_on_nhwc_arrays_in_the_nhwc_contestant(pass_, monkeypatch):
    seen = []
    real = convforge.conv2d if pass_ == "fwd" else convforge.conv2d_backward

    def spy(*args, **kwargs):
        seen.append([check.memory_format(a) for a in args if isinstance(a, np.ndarray)])
        return real(*args, **kwargs)

    monkeypatch.setattr(convforge, "conv2d" if pass_ == "fwd" else "conv2d_backward", spy)
    case = _tiny_conv()
    problem = run.build_problem(case, pass_, ops.PEERS)
    run.check_problem(case, pass_, problem)
    convforge_impls = [i for i in problem.impls if i.who == "convforge"]
    assert [i.layout for i in convforge_impls] == ["nchw", "channels_last"]
    # Each contestant's arrays (input, weight, grad_output) are all in its layout; bias is 1-D.
    assert [set(s) - {None} for s in seen] == [{"nchw"}, {"channels_last"}]
    # Each names the algorithm the chooser picks for its layout.
    args = dict(input_shape=(2, 4, 6, 5), weight_shape=(8, 4, 3, 3), padding=1)
    for impl, cl in zip(convforge_impls, (False, True)):
        if pass_ == "fwd":
            assert impl.variant == convforge.conv2d_algorithm(**args, channels_last=cl)
        else:
            assert impl.variant == (f"dx {convforge.conv2d_algorithm(**args, pass_='grad_input', channels_last=cl)}, "
                                    f"dw {convforge.conv2d_algorithm(**args, pass_='grad_weight', channels_last=cl)}")
    assert convforge_impls[0].variant != convforge_impls[1].variant  # NHWC has algorithms of its own


def test_a_result_in_another_memory_format_than_torchs_stops_the_run():
    case = _tiny_conv()
    problem = run.build_problem(case, "fwd", ("torch",))
    nhwc = next(i for i in problem.impls if i.who == "convforge" and i.layout == "channels_last")
    right = nhwc.fn
    nhwc.fn = lambda: np.ascontiguousarray(right())  # right values, but NCHW memory: a hidden copy
    with pytest.raises(check.CheckError, match=r"conv2d tiny_conv fwd: convforge\[channels_last, .*\]: output: "
                                               r"returned in nchw memory format, torch\[channels_last\] in channels_last"):
        run.check_problem(case, "fwd", problem)


def test_memory_format_by_torchs_rule():
    x = np.zeros((2, 3, 4, 5), np.float32)
    assert check.memory_format(x) == "nchw"
    assert check.memory_format(ops.nhwc(x)) == "channels_last"
    assert check.memory_format(ops.nhwc(x[:, :1])) == "nchw"  # one channel: both, read as NCHW like torch
    assert check.memory_format(x[:, :, ::2]) == "strided"
    assert check.memory_format(x[0]) is None
    with pytest.raises(check.CheckError, match="grad_input: expected a dense NCHW or channels_last array"):
        check.compare_formats("x", ["strided"], [check.Expected("grad_input", x)])


@pytest.mark.parametrize("fmt", ["channels_last", "nchw"])
def test_resnet18_step_is_checked_and_steps(fmt):
    """The train suite's ResNet-18 step, on a small batch: native torch and the switch agree with
    the float64 model's logits, a step runs on each, and the switch ran convforge's ops."""
    import convforge.torch as ct

    case = suites.Case("train", "resnet18_tiny", dict(model="resnet18", batch_size=2, size=32, memory_format=fmt),
                       passes=("step",))
    problem = run.build_problem(case, "step", ("torch",))
    assert [i.who for i in problem.impls] == ["convforge", "torch"]
    run.check_problem(case, "step", problem)
    ct.dispatched.clear()
    losses = [float(impl.fn()) for impl in problem.impls]
    assert ct.dispatched["conv2d"] == 20 and ct.dispatched["linear"] == 1
    assert all(np.isfinite(losses))
