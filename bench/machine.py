"""What the numbers were measured on: the CPU, the software versions, and the machine's own
ceilings, measured here rather than taken from a data sheet: the FP32 FMA peak of the ISA path
convforge uses (per thread count) and the DRAM bandwidth (STREAM-style triad and copy)."""

import datetime
import os
import platform
import re

import numpy as np

import convforge
from convforge import _C

PROBE_ARRAY_BYTES = 64 << 20  # twice a 32 MiB L3: the copy and triad stream from DRAM


def cpu_info():
    info = {"model": platform.processor() or platform.machine(), "vendor": "", "family": None, "model_id": None,
            "flags": [], "logical_cpus": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read().split("\n\n")[0]
    except OSError:
        return info
    fields = dict(re.findall(r"^([^\t:]+?)\s*:\s*(.*)$", text, re.M))
    info["model"] = fields.get("model name", info["model"])
    info["vendor"] = fields.get("vendor_id", "")
    info["family"] = int(fields["cpu family"]) if "cpu family" in fields else None
    info["model_id"] = int(fields["model"]) if fields.get("model", "").isdigit() else None
    info["flags"] = sorted(fields.get("flags", "").split())
    return info


def microarchitecture(cpu):
    """A short name for the core (the model string of a virtual machine is often generic)."""
    fam, model = cpu.get("family"), cpu.get("model_id")
    if cpu.get("vendor") == "AuthenticAMD" and fam is not None:
        if fam == 25:  # 19h: Zen 3 and Zen 4
            zen4 = model is not None and (0x10 <= model <= 0x1F or 0x60 <= model <= 0x7F or 0xA0 <= model <= 0xAF)
            return "zen4" if zen4 else "zen3"
        return {23: "zen2", 26: "zen5"}.get(fam, f"amd-f{fam}")
    if cpu.get("vendor") == "GenuineIntel":
        return "amx" if "amx_tile" in cpu.get("flags", ()) else ("avx512" if "avx512f" in cpu.get("flags", ()) else "x86")
    return platform.machine()


def machine_kind(cpu=None):
    """e.g. 'amd-epyc-zen4-2cpu': the file name of this machine kind's recorded results."""
    cpu = cpu or cpu_info()
    words = re.sub(r"\(.*?\)|processor|\d+-core|cpu @.*", " ", cpu["model"], flags=re.I).lower()
    slug = "-".join(re.findall(r"[a-z0-9]+", words)[:3]) or "cpu"
    arch = microarchitecture(cpu)
    parts = [slug] + ([arch] if arch not in slug else []) + [f"{cpu['logical_cpus']}cpu"]
    return "-".join(parts)


def software():
    info = convforge.info()
    versions = {
        "convforge": convforge.__version__,
        "isa": info["isa"],
        "supported_isas": info["supported_isas"],
        "openmp": info["openmp"],
        "compiler": info.get("compiler"),
        "numpy": np.__version__,
        "python": platform.python_version(),
    }
    try:
        from threadpoolctl import threadpool_info

        versions["blas"] = sorted({f"{p.get('internal_api')} {p.get('version')}" for p in threadpool_info()
                                   if p.get("user_api") == "blas"})
    except ImportError:
        versions["blas"] = []
    try:
        import torch

        versions["torch"] = torch.__version__
        versions["torch_config"] = " ".join(
            w for w in ("MKL" if torch.backends.mkl.is_available() else "", "oneDNN" if torch.backends.mkldnn.is_available() else "") if w)
    except ImportError:
        versions["torch"] = None
    return versions


def probe(threads, quick=False):
    """thread count -> {fma_gflops, triad_gbps, copy_gbps} for the ISA path in use."""
    isa = convforge.info()["isa"]
    seconds = 0.2 if quick else 0.5
    repeats = 5 if quick else 10
    peaks = {}
    for t in sorted({1, *threads}):  # the one-thread figure is the per-core reference
        peaks[t] = {
            "isa": isa,
            "fma_gflops": _C._probe_fma_gflops(isa, t, seconds),
            "triad_gbps": _C._probe_memory_gbps("triad", PROBE_ARRAY_BYTES, t, repeats),
            "copy_gbps": _C._probe_memory_gbps("copy", PROBE_ARRAY_BYTES, t, repeats),
        }
    return peaks


def last_level_cache_bytes():
    """Size of the largest CPU cache (L3 here), or None when the system does not say."""
    best = None
    for index in range(8):
        try:
            with open(f"/sys/devices/system/cpu/cpu0/cache/index{index}/size") as f:
                text = f.read().strip()
        except OSError:
            continue
        unit = {"K": 1 << 10, "M": 1 << 20}.get(text[-1:], 1)
        size = int(text.rstrip("KM")) * unit
        best = max(best or 0, size)
    return best


def load_average():
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:  # pragma: no cover - not on Linux
        return None


def describe(threads, quick=False, peaks=None):
    cpu = cpu_info()
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "kind": machine_kind(cpu),
            "cpu_model": cpu["model"],
            "microarchitecture": microarchitecture(cpu),
            "vendor": cpu["vendor"],
            "family": cpu["family"],
            "model_id": cpu["model_id"],
            "logical_cpus": cpu["logical_cpus"],
            "last_level_cache_bytes": last_level_cache_bytes(),
            "load_average_1min": load_average(),  # other work running while the benchmark ran
            "flags": cpu["flags"],
            "peaks": {str(t): v for t, v in (peaks if peaks is not None else probe(threads, quick)).items()},
        },
        "software": software(),
    }
