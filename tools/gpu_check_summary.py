"""The short summary at the end of tools/gpu_check.sh, from what its steps left in the output
folder: the steps' exit codes (steps.txt), the op tests (tests.xml, JUnit), the sanitizer logs
(sanitizer-<tool>.log) and the GPU benchmark (bench-cuda.json). Prints it and writes
summary.json beside them.

    python tools/gpu_check_summary.py OUT
"""

import json
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

SANITIZERS = ("memcheck", "racecheck", "synccheck")
# The aims, checked when the numbers exist: SGEMM at least 0.85x cuBLAS for n >= 4096,
# conv2d forward at least 0.7x cuDNN on the large layers.
GEMM_AIM, CONV_AIM = 0.85, 0.7
LARGE_CONV_LAYERS = {"alexnet_conv1", "vgg_conv1_2", "vgg_conv3_2", "vgg_conv5_x", "resnet_1x1", "resnet_3x3s2"}


def steps(out):
    path = out / "steps.txt"
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        name, rc, seconds = line.split()
        rows.append({"step": name, "exit": rc, "seconds": int(seconds)})
    return rows


def tests(out):
    path = out / "tests.xml"
    if not path.exists():
        return None
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    count = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
    failed = ["::".join(part for part in (case.get("classname"), case.get("name")) if part)
              for case in root.iter("testcase") if case.find("failure") is not None or case.find("error") is not None]
    passed = count["tests"] - count["failures"] - count["errors"] - count["skipped"]
    return {"passed": passed, "failed": count["failures"] + count["errors"], "skipped": count["skipped"],
            "failed_tests": failed}


def sanitizer(out, tool):
    path = out / f"sanitizer-{tool}.log"
    if not path.exists():
        return None
    text = path.read_text(errors="replace")
    errors = [int(n) for n in re.findall(r"ERROR SUMMARY: (\d+) error", text)]
    hazards = [int(n) for n in re.findall(r"RACECHECK SUMMARY: (\d+) hazard", text)]
    if not errors and not hazards:
        return {"findings": None, "note": "no summary line in the log (the run did not finish)"}
    return {"findings": sum(errors) + sum(hazards)}


def bench(out):
    path = out / "bench-cuda.json"
    if not path.exists():
        return None
    doc = json.loads(path.read_text())
    rows = []
    for r in doc["results"]:
        if r["candidate"] != "convforge":
            continue
        ratio = r["ratios"].get("torch")
        aim = None
        if r["suite"] == "gemm" and r["shape"].startswith("square_") and int(r["shape"].split("_")[1]) >= 4096:
            aim = GEMM_AIM
        elif r["suite"] == "conv2d" and r["pass"] == "fwd" and r["shape"] in LARGE_CONV_LAYERS:
            aim = CONV_AIM
        rows.append({"suite": r["suite"], "shape": r["shape"], "pass": r["pass"], "ms": r["median_s"] * 1e3,
                     "gflops": r.get("gflops"), "gbps": r.get("gbps"), "vs_torch": ratio, "aim": aim,
                     "meets_aim": None if aim is None or ratio is None else ratio >= aim})
    return {"gpu": doc["machine"].get("gpu"), "kind": doc["machine"].get("kind"), "rows": rows}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    out = Path(argv[0])
    summary = {"steps": steps(out), "tests": tests(out),
               "sanitizers": {tool: sanitizer(out, tool) for tool in SANITIZERS}, "bench": bench(out)}
    lines = ["gpu_check summary"]
    for s in summary["steps"]:
        lines.append(f"  step {s['step']:<20} exit {s['exit']:>7}  {s['seconds']:>4} s")
    t = summary["tests"]
    lines.append(f"  tests: {t['passed']} passed, {t['failed']} failed, {t['skipped']} skipped" if t else
                 "  tests: not run")
    for name in (t or {}).get("failed_tests", [])[:15]:
        lines.append(f"    FAILED {name}")
    for tool, s in summary["sanitizers"].items():
        text = "not run" if s is None else (s.get("note") if s["findings"] is None else f"{s['findings']} findings")
        lines.append(f"  compute-sanitizer {tool}: {text}")
    b = summary["bench"]
    if b is None:
        lines.append("  bench: not run")
    else:
        lines.append(f"  bench on {b['gpu']} ({b['kind']}): convforge vs torch (cuBLAS / cuDNN), peer time / convforge time")
        for r in b["rows"]:
            rate = f"{r['gflops']:.0f} GFLOP/s" if r["gflops"] else (f"{r['gbps']:.0f} GB/s" if r["gbps"] else "")
            ratio = f"{r['vs_torch']:.2f}x" if r["vs_torch"] is not None else "-"
            aim = "" if r["aim"] is None else f"  (aim {r['aim']}x: {'met' if r['meets_aim'] else 'MISSED'})"
            lines.append(f"    {r['suite']:<7} {r['shape']:<22} {r['pass']:<4} {r['ms']:9.3f} ms {rate:>14}  {ratio:>6}{aim}")
    print("\n".join(lines))
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
