"""The GPU check (tools/gpu_check.sh) as far as it runs without a GPU: its no-GPU path, its dry run
(the exact commands, which must be accepted by what they call), the kernel grid and the bench's
--device mode on the emulated backend, the summary, and host_backend('cuda')'s copying."""

import json
import os
import shlex
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

import convforge
from bench import cli, device as devices, report, suites
from convforge import _arrays, reference
from helpers import assert_close, random

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tools" / "gpu_check.sh"
HAS_GPU = convforge.info()["cuda_devices"] > 0


def check_script(*args, nvidia_smi, tmp_path):
    env = dict(os.environ, NVIDIA_SMI=str(nvidia_smi), CONVFORGE_GPU_CHECK_OUT=str(tmp_path / "out"))
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=60)


@pytest.fixture
def fake_h200(tmp_path):
    """An nvidia-smi that reports one H200."""
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'NVIDIA H200, 9.0'\n")
    smi.chmod(0o755)
    return smi


def test_without_a_gpu_it_says_so_in_one_line_and_exits_0(tmp_path):
    done = check_script(nvidia_smi=tmp_path / "missing-nvidia-smi", tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("\n") == 1 and "no NVIDIA GPU" in done.stdout, done.stdout
    assert not (tmp_path / "out").exists()  # nothing built, nothing written


def dry_run_commands(done):
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    return lines[0], [shlex.split(line) for line in lines[1:] if not line.startswith("#")]


def test_dry_run_prints_the_exact_commands_for_the_gpu_present(fake_h200, tmp_path):
    header, commands = dry_run_commands(check_script("--dry-run", nvidia_smi=fake_h200, tmp_path=tmp_path))
    assert "NVIDIA H200" in header and "sm_90" in header
    assert not (tmp_path / "out").exists()  # a dry run writes nothing
    by_tool = {}
    for cmd in commands:
        by_tool.setdefault(cmd[0] if cmd[0] != "env" else cmd[2], []).append(cmd)
    build = next(c for c in commands if "--no-build-isolation" in c)
    # This GPU's architecture only, no network, the build tools of the machine.
    assert "-Ccmake.define.CMAKE_CUDA_ARCHITECTURES=90-real" in build and "--no-index" in build
    assert "-Ccmake.define.CONVFORGE_CUDA=ON" in build and build[-1] == "."
    tests = next(c for c in commands if c[1:3] == ["-m", "pytest"])
    out = str(tmp_path / "out")
    assert f"--junitxml={out}/tests.xml" in tests
    test_files = [a for a in tests if a.startswith("tests/")]
    assert {"tests/test_cuda_arrays.py", "tests/test_gemm.py", "tests/test_conv2d.py", "tests/test_pool2d.py"} <= set(test_files)
    assert all((ROOT / f).is_file() for f in test_files)
    sanitizers = by_tool["compute-sanitizer"]
    assert [c[c.index("--tool") + 1] for c in sanitizers] == ["memcheck", "racecheck", "synccheck"]
    for c in sanitizers:
        assert "--error-exitcode" in c and c[-3:] == ["tools/gpu_kernel_grid.py", "--device", "cuda"]
    bench = next(c for c in commands if c[1:3] == ["-m", "bench"])
    assert bench[3:6] == ["all", "--device", "cuda"] and f"{out}/bench/results" in bench
    # The bench command is one the harness accepts (--list stops before any GPU is needed).
    assert cli.main(bench[3:] + ["--list"]) == 0
    assert commands[-1][1:] == ["tools/gpu_check_summary.py", out]


def test_dry_run_without_a_gpu_plans_for_an_h200(tmp_path):
    header, commands = dry_run_commands(check_script("--dry-run", nvidia_smi=tmp_path / "none", tmp_path=tmp_path))
    assert "no GPU here" in header and "sm_90" in header
    assert any("-Ccmake.define.CMAKE_CUDA_ARCHITECTURES=90-real" in c for c in commands)


def test_dry_run_takes_the_architecture_of_another_gpu(tmp_path):
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'NVIDIA A100-SXM4-80GB, 8.0'\n")
    smi.chmod(0o755)
    _, commands = dry_run_commands(check_script("--dry-run", nvidia_smi=smi, tmp_path=tmp_path))
    assert any("-Ccmake.define.CMAKE_CUDA_ARCHITECTURES=80-real" in c for c in commands)


def test_bad_argument_is_a_usage_error(tmp_path):
    done = check_script("--bogus", nvidia_smi=tmp_path / "none", tmp_path=tmp_path)
    assert done.returncode == 2 and "usage" in done.stderr


def test_the_requirements_list_holds_what_the_steps_import():
    wanted = {line.split(">=")[0].strip() for line in (ROOT / "tools" / "gpu_check_requirements.txt").read_text().splitlines()
              if line.strip() and not line.startswith("#")}
    assert {"scikit-build-core", "pybind11", "pytest", "hypothesis", "rich", "threadpoolctl"} <= wanted


# ---------------------------------------------------------------------------------------------
# The kernel grid the sanitizers run, on the emulator


def test_kernel_grid_passes_on_the_emulator():
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "gpu_kernel_grid.py"), "--device", "cuda-emulated"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    last = done.stdout.strip().splitlines()[-1]
    assert last.endswith("passed, 0 failed") and int(last.split(": ")[1].split()[0]) >= 100, last
    for kernel_case in ("gemm tile128_scalar", "conv2d fwd tile128_fwd ", "conv2d bwd grad_input tile128_bwd_input",
                        "conv2d bwd grad_weight pointwise_splitk", "conv2d fwd depthwise", "avg_pool2d bwd"):
        assert f"ok   {kernel_case}" in done.stdout, kernel_case


# ---------------------------------------------------------------------------------------------
# The bench's --device mode, on the emulated backend


TINY = {
    "gemm": (suites._gemm("tiny_33x40x20", 33, 40, 20), suites._gemm("tiny_linear", 16, 24, 36, trans_b=True)),
    "conv2d": (suites._conv("tiny_conv", 2, 3, 10, 9, 8, 3, padding=1),
               suites._conv("tiny_depthwise", 1, 4, 8, 8, 4, 3, padding=1, groups=4)),
    "pool2d": (suites._pool("tiny_max", "max", (2, 3, 9, 9), 3, 2, padding=1),
               suites._pool("tiny_avg", "avg", (2, 3, 8, 8), 2, 2)),
}


@pytest.fixture(scope="module")
def emulated_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench-device")
    saved = dict(devices.SUITES)
    devices.SUITES.update(TINY)
    try:
        argv = ["all", "--device", "cuda-emulated", "--min-sample-ms", "1", "--json", str(out / "out.json"),
                "--record", "--results-dir", str(out / "results")]
        assert cli.main(argv) == 0
    finally:
        devices.SUITES.clear()
        devices.SUITES.update(saved)
    return out, json.loads((out / "out.json").read_text())


def test_device_mode_checks_times_and_writes_the_json(emulated_run):
    out, doc = emulated_run
    assert doc["device"] == "cuda-emulated" and doc["settings"]["peers"] == ["torch"]
    assert doc["settings"]["timer"] == "host clock" and doc["settings"]["suites"] == ["gemm", "conv2d", "pool2d"]
    kind = doc["machine"]["kind"]
    assert kind.startswith("cuda-emulated-") and doc["software"]["torch"]
    rows = doc["results"]
    seen = {(r["suite"], r["shape"], r["pass"], r["candidate"]) for r in rows}
    for suite, cases in TINY.items():
        for case in cases:
            for pass_ in case.passes:
                assert {(suite, case.name, pass_, "convforge"), (suite, case.name, pass_, "torch")} <= seen
    for r in rows:
        assert r["device"] == "cuda-emulated" and r["samples"] >= 7 and r["q1_s"] <= r["median_s"] <= r["q3_s"]
        assert r["median_s"] > 0
        if r["candidate"] == "convforge":
            assert set(r["ratios"]) == {"torch"}
    conv_torch = next(r for r in rows if r["shape"] == "tiny_conv" and r["candidate"] == "torch")
    assert set(conv_torch["variants"]) == {"nchw", "channels_last"}
    # --record: bench/results/<device kind>/<suite>.json and a plot, never the README's CPU tables.
    recorded = out / "results" / kind
    assert sorted(p.name for p in recorded.iterdir()) == ["conv2d.json", "gemm.json", "pool2d.json", "speedup.png"]
    assert json.loads((recorded / "gemm.json").read_text())["results"][0]["suite"] == "gemm"
    assert report.load(out / "results") == {}


def test_device_timing_brackets_the_calls_with_events_and_waits_for_the_end():
    events = []

    class Event:
        def __init__(self):
            self.name = f"e{sum(e[0] == 'new' for e in events)}"
            events.append(("new", self.name))

        def record(self):
            events.append(("record", self.name))

        def synchronize(self):
            events.append(("synchronize", self.name))

        def elapsed_time(self, end):
            events.append(("elapsed", self.name, end.name))
            return 6.0  # ms

    d = object.__new__(devices.Device)
    d.event = Event
    seconds = d.timed(lambda: events.append(("call",)), 3)
    assert seconds == pytest.approx(0.002)  # 6 ms over 3 calls
    assert events == [("new", "e0"), ("new", "e1"), ("record", "e0"), ("call",), ("call",), ("call",),
                      ("record", "e1"), ("synchronize", "e1"), ("elapsed", "e0", "e1")]


def test_device_mode_rejects_what_it_cannot_run(capsys):
    assert cli.main(["train", "--device", "cuda-emulated"]) == 2
    assert "expected a suite of gemm, conv2d, pool2d" in capsys.readouterr().err
    assert cli.main(["gemm", "--device", "cuda-emulated", "--against", "numpy"]) == 2
    assert "the peer is torch" in capsys.readouterr().err
    assert cli.main(["gemm", "--device", "cuda", "--list"]) == 0
    assert "square_8192" in capsys.readouterr().out  # the GPU suite: n = 1024 ... 8192


@pytest.mark.skipif(HAS_GPU, reason="checks the error on a machine without a GPU")
def test_device_cuda_without_a_gpu_is_a_clear_error(capsys):
    assert cli.main(["gemm", "--device", "cuda", "--shapes", "square_1024"]) == 2
    assert "--device cuda: " in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# The summary


def test_summary_reports_tests_sanitizers_and_ratios(emulated_run, tmp_path):
    _, doc = emulated_run
    out = tmp_path / "out"
    out.mkdir()
    (out / "steps.txt").write_text("build 0 71\ntests 1 130\nbench skipped 0\n")
    suite = ET.Element("testsuites")
    s = ET.SubElement(suite, "testsuite", tests="5", failures="1", errors="0", skipped="1")
    ET.SubElement(ET.SubElement(s, "testcase", classname="tests.test_gemm", name="test_backends[cuda]"), "failure")
    ET.ElementTree(suite).write(out / "tests.xml")
    (out / "sanitizer-memcheck.log").write_text("========= COMPUTE-SANITIZER\n========= ERROR SUMMARY: 0 errors\n")
    (out / "sanitizer-racecheck.log").write_text("========= RACECHECK SUMMARY: 2 hazards displayed (2 errors, 0 warnings)\n")
    (out / "bench-cuda.json").write_text(json.dumps(doc))
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "gpu_check_summary.py"), str(out)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert "tests: 3 passed, 1 failed, 1 skipped" in text and "FAILED tests.test_gemm::test_backends[cuda]" in text
    assert "memcheck: 0 findings" in text and "racecheck: 2 findings" in text and "synccheck: not run" in text
    assert "step bench" in text and "skipped" in text
    ratio = next(r for r in doc["results"] if r["shape"] == "tiny_conv" and r["candidate"] == "convforge")["ratios"]["torch"]
    assert f"{ratio:.2f}x" in text
    summary = json.loads((out / "summary.json").read_text())
    assert summary["tests"]["failed"] == 1 and summary["sanitizers"]["racecheck"]["findings"] == 2


# ---------------------------------------------------------------------------------------------
# host_backend("cuda"): the copying, with a stand-in for the GPU


@pytest.mark.skipif(HAS_GPU, reason="checks the error on a machine without a GPU")
def test_host_backend_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(RuntimeError, match="no CUDA device is available"):
        with convforge.host_backend("cuda"):
            pass


@pytest.fixture
def host_copies(monkeypatch):
    """host_backend('cuda')'s copying with NumPy copies standing in for device arrays (the CUDA
    context is not entered): what goes to the 'device', and results that must come back."""
    copies = []

    def to_device(x):
        copies.append(x)
        return np.array(x, copy=True)

    monkeypatch.setitem(_arrays.STAGING, "host-copy", lambda: (to_device, np.asarray))
    monkeypatch.setattr(_arrays, "_enter_cuda_context", lambda args: None)
    previous = _arrays.set_staging("host-copy")
    yield copies
    _arrays.set_staging(previous)


def test_staged_ops_copy_in_and_back(host_copies):
    x, w, b = random((2, 3, 7, 6), np.float32, "x"), random((4, 3, 3, 3), np.float32, "w"), random((4,), np.float32, "b")
    y = convforge.conv2d(x, w, b, padding=1)
    assert_close(y, reference.conv2d(x, w, b, padding=1), reference.conv2d(np.abs(x), np.abs(w), np.abs(b), padding=1), 28)
    assert any(c is x for c in host_copies) and any(c is w for c in host_copies)
    p, idx = convforge.max_pool2d(y, 2, return_indices=True)
    want_p, want_idx = reference.max_pool2d(y, 2, return_indices=True)
    assert np.array_equal(p, want_p) and np.array_equal(idx, want_idx)


def test_staged_argument_passed_twice_stays_one_array(host_copies):
    a, b, c = random((5, 4), np.float64, "a"), random((4, 3), np.float64, "b"), random((5, 3), np.float64, "c")
    c0 = c.copy()
    out = convforge.gemm(a, b, c, beta=1.0, out=c)  # c is also the output
    assert out is c
    assert sum(x is c for x in host_copies) == 1
    assert_close(c, reference.gemm(a, b, c0, beta=1.0), reference.gemm(np.abs(a), np.abs(b), np.abs(c0), beta=1.0), 5)


def test_staged_gemm_starts_from_c_in_out(host_copies):
    a, b, c = random((6, 4), np.float32, "a"), random((4, 5), np.float32, "b"), random((6, 5), np.float32, "c")
    got = convforge.gemm(a, b, c, alpha=0.5, beta=2.0)  # a new out, c left alone
    kw = dict(alpha=0.5, beta=2.0)
    assert_close(got, reference.gemm(a, b, c, **kw), reference.gemm(np.abs(a), np.abs(b), np.abs(c), **kw), 5)
    assert not any(x is c for x in host_copies)  # the GPU binding takes c only as out itself


def test_staging_is_per_thread_and_off_inside_another_backend(host_copies):
    import threading

    seen = []
    t = threading.Thread(target=lambda: seen.append(getattr(_arrays._thread, "staging", None)))
    t.start()
    t.join()
    assert seen == [None]
    with convforge.host_backend("cuda-emulated"):
        before = len(host_copies)
        convforge.gemm(random((3, 2), np.float32, 1), random((2, 4), np.float32, 2))
        assert len(host_copies) == before  # ran on the emulator, not staged
    assert _arrays.set_staging("host-copy") == "host-copy"  # restored on leaving
