#!/usr/bin/env python3
"""Regenerates bench/results/ptxas.txt: registers, shared memory, stack and spills of every CUDA
kernel for every architecture the build targets, from nvcc's `-Xptxas -v` output.

    python tools/ptxas_report.py [--out bench/results/ptxas.txt] [--nvcc nvcc]

Exits non-zero when a kernel spills registers (hot kernels must not)."""

import argparse
import datetime
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ["csrc/cuda/gemm.cu", "csrc/cuda/conv2d.cu", "csrc/cuda/pool2d.cu"]
ARCHS = ["75", "80", "86", "89", "90"]  # keep in step with CMAKE_CUDA_ARCHITECTURES in CMakeLists.txt

FUNCTION = re.compile(r"Compiling entry function '(\S+)' for '(sm_\d+)'")
PROPERTIES = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
USAGE = re.compile(r"Used (\d+) registers(?:, used \d+ barriers)?(.*)")
SMEM = re.compile(r"(\d+) bytes smem")


def demangle(names):
    out = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True, text=True, check=True)
    return out.stdout.splitlines()


def short(name):
    """Drop the namespace and the argument list; keep the template arguments."""
    name = name.replace("convforge::cuda::", "")
    depth, cut = 0, len(name)
    for i, ch in enumerate(name):
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth -= 1
        elif ch == "(" and depth == 0:
            cut = i
            break
    return name[:cut]


def compile_report(nvcc, source):
    gencode = [f"-gencode=arch=compute_{a},code=sm_{a}" for a in ARCHS]
    cmd = [nvcc, "-c", "-o", "/dev/null", "-O3", "-std=c++17", f"-I{ROOT / 'csrc'}", "-Xptxas", "-v",
           *gencode, str(ROOT / source)]
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"nvcc failed on {source}:\n{run.stderr}")
    rows, current = [], None
    for line in run.stderr.splitlines():
        if m := FUNCTION.search(line):
            current = {"mangled": m.group(1), "arch": m.group(2), "source": source}
        elif current and (m := PROPERTIES.search(line)):
            current.update(stack=int(m.group(1)), spill_st=int(m.group(2)), spill_ld=int(m.group(3)))
        elif current and (m := USAGE.search(line)):
            smem = SMEM.search(m.group(2))
            current.update(regs=int(m.group(1)), smem=int(smem.group(1)) if smem else 0)
            rows.append(current)
            current = None
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "bench/results/ptxas.txt"))
    parser.add_argument("--nvcc", default="nvcc")
    args = parser.parse_args()
    version = subprocess.run([args.nvcc, "--version"], capture_output=True, text=True).stdout.strip().splitlines()[-1]
    rows = [r for source in SOURCES for r in compile_report(args.nvcc, source)]
    for row, name in zip(rows, demangle([r["mangled"] for r in rows])):
        row["name"] = short(name)
    rows.sort(key=lambda r: (r["source"], r["name"], r["arch"]))
    width = max(len(r["name"]) for r in rows)
    lines = [
        "# -Xptxas -v of every convforge CUDA kernel (regenerate: python tools/ptxas_report.py)",
        f"# {version}; -O3; {datetime.date.today().isoformat()}",
        "# regs: registers per thread; smem: static shared memory (bytes); stack: stack frame (bytes);",
        "# spill: spill stores / spill loads (bytes)",
        "",
        f"{'kernel':<{width}}  {'arch':<6} {'regs':>4} {'smem':>6} {'stack':>5} {'spill':>9}",
    ]
    source = None
    for r in rows:
        if r["source"] != source:
            source = r["source"]
            lines.append(f"# {source}")
        lines.append(f"{r['name']:<{width}}  {r['arch']:<6} {r['regs']:>4} {r['smem']:>6} {r['stack']:>5} "
                     f"{r['spill_st']:>4}/{r['spill_ld']:<4}")
    spilling = sorted({r["name"] for r in rows if r["spill_st"] or r["spill_ld"]})
    lines += ["", f"# {len(rows)} kernel builds, {len({r['name'] for r in rows})} kernels, "
                  f"{len(spilling)} with spills" + (": " + ", ".join(spilling) if spilling else "")]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines[-1:]))
    return 1 if spilling else 0


if __name__ == "__main__":
    sys.exit(main())
