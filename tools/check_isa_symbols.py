#!/usr/bin/env python3
"""Check that no per-ISA object file defines a shared symbol.

One build runs on any x86-64 CPU because each ISA's code lives in its own translation unit
(csrc/**/*__avx512.cpp, *__avx2.cpp, *__scalar.cpp) compiled with only that ISA's flags, and is
called only when the CPU has that ISA. That holds only if every function such a file defines is
its own. A weak or COMDAT ("vague linkage") symbol -- a std::vector method, any header template
or inline function the compiler did not inline -- is merged by the linker: it keeps one copy of
each for the whole module, from whichever object comes first. An AVX-512 copy of
std::vector<float>::_M_fill_assign can thus serve the AVX2 path too, and an AVX2-only CPU dies
with SIGILL. So, in every per-ISA object, each defined symbol must be either local (internal
linkage: anonymous namespaces, static) or a strong global symbol in a section of its own (the
intended entry points such as sgemm_ukernel_14x32__avx512). Failures are:

- a defined symbol with WEAK or GNU_UNIQUE binding, or a common symbol (from nm);
- a defined global symbol in a section that belongs to a COMDAT group (from readelf; objects
  with machine code only).

The Release build compiles with -flto, so its objects hold compiler IR, not machine code; nm
lists their symbols through the compiler's LTO plugin (binutils' nm finds GCC's; gcc-nm and
llvm-nm are tried next). The IR still has every weak definition the file instantiated, inlined
later or not, which makes the check on LTO objects the stricter one.

The only exception is data the compiler emits for exception handling (DW.ref.__gxx_personality_v0:
a pointer to the C++ runtime's personality routine, the same in every object).

Usage:
  python tools/check_isa_symbols.py OBJECT...      # check these objects
  python tools/check_isa_symbols.py --build DIR    # configure a Release build in DIR, compile only
                                                   # the per-ISA objects, check every one of them

Exit status 0 when clean, 1 on a leak (each one listed), 2 on a usage or build error.
Needs nm and readelf (binutils); ELF objects only.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ISAS = ("avx512", "avx2", "scalar")
PER_ISA_SOURCE = re.compile(r"__(%s)\.(cpp|cc|cu)$" % "|".join(ISAS))

# Compiler-emitted data with no ISA-specific content (see the module docstring).
ALLOWED = {"DW.ref.__gxx_personality_v0"}


class CheckError(Exception):
    """The check could not run (exit status 2)."""


@dataclass
class Leak:
    obj: str
    symbol: str
    kind: str
    code: bool | None  # in an executable section (instructions of the object's ISA); None: unknown (LTO IR)

    def __str__(self) -> str:
        what = {True: ", code", False: ", data", None: ""}[self.code]
        return f"{self.obj}: {demangle(self.symbol)} [{self.kind}{what}]"


def demangle(name: str) -> str:
    cxxfilt = shutil.which("c++filt")
    if not cxxfilt:
        return name
    out = subprocess.run([cxxfilt, name], capture_output=True, text=True)
    return out.stdout.strip() or name


def run_tool(tool: str, *args: str) -> str:
    path = shutil.which(tool)
    if not path:
        raise CheckError(f"{tool} (binutils) not found")
    res = subprocess.run([path, *args], capture_output=True, text=True)
    if res.returncode != 0:
        raise CheckError(f"{tool} {' '.join(args)} failed:\n{res.stderr}")
    return res.stdout


# Marker symbols of GCC's LTO objects (IR, no machine code): not real definitions.
LTO_MARKERS = {"__gnu_lto_slim", "__gnu_lto_v1"}


def defined_symbols(obj: str) -> list[tuple[str, str]]:
    """(name, nm type letter) of every symbol obj defines. The build compiles with -flto, so the
    objects hold compiler IR whose symbols only an nm with the compiler's LTO plugin can list:
    try nm, then gcc-nm and llvm-nm, and take the first that sees a real definition."""
    for tool in ("nm", "gcc-nm", "llvm-nm"):
        if not shutil.which(tool):
            continue
        res = subprocess.run([tool, "--defined-only", "-P", obj], capture_output=True, text=True)
        syms = []
        for line in res.stdout.splitlines():
            fields = line.split()
            if len(fields) >= 2 and fields[0] not in LTO_MARKERS:
                syms.append((fields[0], fields[1]))
        if res.returncode == 0 and syms:
            return syms
    raise CheckError(f"no symbols read from {obj} (an LTO object needs nm with "
                     "the compiler's LTO plugin: gcc-nm or llvm-nm)")


def sections(obj: str) -> dict[int, tuple[str, str]]:
    """Section index -> (name, flags) from readelf -S."""
    out = {}
    pattern = re.compile(r"^\s*\[\s*(\d+)\]\s+(\S+)\s+\S+\s+[0-9a-f]+\s+[0-9a-f]+\s+[0-9a-f]+\s+"
                         r"[0-9a-f]+\s+([A-Za-z]*)\s+\d+\s+\d+\s+\d+\s*$")
    for line in run_tool("readelf", "-W", "-S", obj).splitlines():
        m = pattern.match(line)
        if m:
            out[int(m.group(1))] = (m.group(2), m.group(3))
    if not out:
        raise CheckError(f"no sections read from {obj} (not an ELF object?)")
    return out


def comdat_globals(obj: str, secs: dict[int, tuple[str, str]]) -> list[Leak]:
    """Global symbols defined in a section of a COMDAT group (ELF objects with machine code)."""
    found = []
    # Num: Value Size Type Bind Vis Ndx Name
    pattern = re.compile(r"^\s*\d+:\s+[0-9a-f]+\s+\S+\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s*$")
    for line in run_tool("readelf", "-W", "-s", obj).splitlines():
        m = pattern.match(line)
        if not m:
            continue
        _typ, bind, _vis, ndx, name = m.groups()
        if bind == "LOCAL" or not ndx.isdigit() or name in ALLOWED:
            continue
        sec_name, flags = secs.get(int(ndx), ("?", ""))
        if "G" in flags:
            found.append(Leak(obj, name, bind + " in COMDAT group " + sec_name, "X" in flags))
    return found


# nm type letters of shared definitions: weak (W, V), GNU unique (u), common (C).
SHARED_TYPES = {"W": "weak", "V": "weak object", "u": "unique", "C": "common"}


def leaks(obj: str) -> list[Leak]:
    """The shared symbols that obj defines."""
    syms = defined_symbols(obj)
    secs = sections(obj)
    found = [Leak(obj, name, SHARED_TYPES[t], None) for name, t in syms
             if t in SHARED_TYPES and name not in ALLOWED]
    if not any(name.startswith(".gnu.lto_") for name, _ in secs.values()):
        seen = {leak.symbol for leak in found}
        found += [leak for leak in comdat_globals(obj, secs) if leak.symbol not in seen]
    if not any(t in "TDBR" for _, t in syms):
        raise CheckError(f"{obj} defines no global entry point: nothing to check?")
    return found


def per_isa_sources(root: Path = ROOT) -> list[Path]:
    return sorted(p.relative_to(root) for p in (root / "csrc").rglob("*")
                  if p.is_file() and PER_ISA_SOURCE.search(p.name))


def isa_compile_options(isa: str, cmakelists: Path = ROOT / "CMakeLists.txt") -> list[str]:
    """The ISA flags CMakeLists.txt gives the per-ISA sources of `isa` (empty for scalar)."""
    if isa == "scalar":
        return []
    text = cmakelists.read_text()
    m = re.search(r"set_source_files_properties\(\$\{CONVFORGE_%s_SOURCES\}\s+PROPERTIES\s+"
                  r'COMPILE_OPTIONS\s+"([^"]*)"' % isa.upper(), text)
    if not m:
        raise CheckError(f"no COMPILE_OPTIONS for {isa} in {cmakelists}")
    return m.group(1).split(";")


def build_objects(build_dir: Path) -> list[str]:
    """Configures a Release build (the shipped flags) in build_dir and compiles only the per-ISA
    objects. Returns their paths; fails if some per-ISA source has no object."""
    try:
        import pybind11
    except ImportError:
        raise CheckError("--build needs pybind11 (pip install pybind11)")
    cmake = shutil.which("cmake")
    if not cmake or not shutil.which("ninja"):
        raise CheckError("--build needs cmake and ninja (pip install cmake ninja)")
    subprocess.run([cmake, "-S", str(ROOT), "-B", str(build_dir), "-G", "Ninja",
                    "-DCMAKE_BUILD_TYPE=Release", "-DCONVFORGE_CUDA=OFF",
                    "-DCONVFORGE_CUDA_EMULATION=OFF", f"-Dpybind11_DIR={pybind11.get_cmake_dir()}",
                    f"-DCONVFORGE_MODULE_DIR={build_dir.resolve() / 'module'}"],
                   check=True, stdout=subprocess.DEVNULL)
    objects = {}
    for src in per_isa_sources():
        # CMake's object path for a source under the project root.
        objects[src] = f"CMakeFiles/_C.dir/{src.as_posix()}.o"
    targets = subprocess.run(["ninja", "-C", str(build_dir), "-t", "targets", "all"],
                             check=True, capture_output=True, text=True).stdout
    known = {line.split(":")[0] for line in targets.splitlines()}
    missing = [str(src) for src, o in objects.items() if o not in known]
    if missing:
        raise CheckError("per-ISA sources not compiled by CMakeLists.txt: "
                         + ", ".join(missing))
    jobs = os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL", "2")
    subprocess.run(["ninja", "-C", str(build_dir), "-j", jobs, *objects.values()], check=True,
                   stdout=subprocess.DEVNULL)
    return [str(build_dir / o) for o in objects.values()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("objects", nargs="*", help="object files to check")
    ap.add_argument("--build", metavar="DIR", type=Path,
                    help="build the per-ISA objects of this checkout in DIR and check them")
    args = ap.parse_args(argv)
    objects = list(args.objects)
    try:
        if args.build:
            objects += build_objects(args.build)
        if not objects:
            ap.error("no object files (give OBJECT... or --build DIR)")
        found = [leak for obj in objects for leak in leaks(obj)]
    except (CheckError, subprocess.CalledProcessError) as e:
        print(f"check_isa_symbols: {e}", file=sys.stderr)
        return 2
    if found:
        print(f"ISA isolation: {len(found)} shared symbol(s) in per-ISA objects "
              "(the linker keeps one copy for every ISA; make them local or move them to "
              "generic code, see csrc/core/scratch.h):", file=sys.stderr)
        for leak in found:
            print("  " + str(leak), file=sys.stderr)
        return 1
    print(f"ISA isolation: {len(objects)} per-ISA objects, no shared symbols")
    return 0


if __name__ == "__main__":
    sys.exit(main())
