"""The ISA-isolation check (tools/check_isa_symbols.py) catches a planted leak.

CI runs the check on the real per-ISA objects (.ci/run). Here it runs on tiny per-ISA sources
compiled with the ISA flags of CMakeLists.txt, with and without LTO (the Release build uses
-flto, whose objects hold IR instead of machine code): a std::vector method or an inline
function a per-ISA file instantiates must fail it; internal-linkage code and strong entry
points must pass.
"""
import importlib.util
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHECKER = ROOT / "tools" / "check_isa_symbols.py"
CXX = shutil.which("c++") or shutil.which("g++")

spec = importlib.util.spec_from_file_location("check_isa_symbols", CHECKER)
check_isa_symbols = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = check_isa_symbols  # dataclasses look their module up there
spec.loader.exec_module(check_isa_symbols)

pytestmark = [
    pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                       reason="the per-ISA sources are x86-64 only"),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ELF objects only"),
    pytest.mark.skipif(CXX is None, reason="needs a C++ compiler"),
]

# The flags of the Release build that matter here (pybind11 adds -flto=auto -fno-fat-lto-objects).
BASE_FLAGS = ["-O3", "-std=c++17", "-fPIC", "-fvisibility=hidden", "-c"]
LTO = {"plain": [], "lto": ["-flto", "-fno-fat-lto-objects"]}

# A std container instantiated in a per-ISA file: every member becomes a weak symbol with
# AVX-512 code (the explicit instantiation makes the compiler emit them all, inlined or not).
VECTOR_LEAK = """
#include <vector>
template class std::vector<float>;
void planted__avx512(std::vector<float>& v, long n) { v.assign(n, 1.0f); }
"""
# A header-style inline function the compiler does not inline: one weak copy per object.
INLINE_LEAK = """
inline __attribute__((noinline)) float dot(const float* a, const float* b, long n) {
  float s = 0;
  for (long i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}
float planted__avx2(const float* a, const float* b, long n) { return dot(a, b, n) + dot(b, a, n); }
"""
# The same work with internal linkage and a strong entry point: nothing shared.
CLEAN = """
#include <cstdlib>
namespace {
template <typename T>
__attribute__((noinline)) T dot(const T* a, const T* b, long n) {
  T s = 0;
  for (long i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}
}  // namespace
float clean__avx512(const float* a, const float* b, long n) {
  float* tmp = static_cast<float*>(std::malloc(sizeof(float) * n));
  for (long i = 0; i < n; ++i) tmp[i] = a[i];
  float r = dot(tmp, b, n) + dot(b, tmp, n);
  std::free(tmp);
  return r;
}
"""
# No entry point at all: the checker must refuse rather than pass an object it learns nothing from.
EMPTY = """
namespace {
int unused_counter = 0;
}
"""


def compile_object(tmp_path, name, source, isa, lto):
    src = tmp_path / f"{name}__{isa}.cpp"
    src.write_text(source)
    obj = tmp_path / f"{name}__{isa}.{lto}.o"
    flags = BASE_FLAGS + LTO[lto] + check_isa_symbols.isa_compile_options(isa)
    subprocess.run([CXX, *flags, str(src), "-o", str(obj)], check=True)
    return obj


def run_checker(*objects):
    return subprocess.run([sys.executable, str(CHECKER), *map(str, objects)], capture_output=True,
                          text=True)


def test_isa_flags_come_from_cmakelists():
    assert "-mavx512f" in check_isa_symbols.isa_compile_options("avx512")
    assert "-mavx2" in check_isa_symbols.isa_compile_options("avx2")
    assert "-mavx512f" not in check_isa_symbols.isa_compile_options("avx2")


@pytest.mark.parametrize("lto", LTO)
def test_planted_vector_leak_fails(tmp_path, lto):
    obj = compile_object(tmp_path, "leak", VECTOR_LEAK, "avx512", lto)
    res = run_checker(obj)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "std::vector<float, std::allocator<float> >::_M_fill_assign" in res.stderr


@pytest.mark.parametrize("lto", LTO)
def test_planted_inline_leak_fails(tmp_path, lto):
    obj = compile_object(tmp_path, "leak", INLINE_LEAK, "avx2", lto)
    res = run_checker(obj)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "dot(float const*, float const*, long)" in res.stderr


@pytest.mark.parametrize("lto", LTO)
def test_clean_object_passes(tmp_path, lto):
    obj = compile_object(tmp_path, "clean", CLEAN, "avx512", lto)
    res = run_checker(obj)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "no shared symbols" in res.stdout


def test_one_leak_among_clean_objects_fails(tmp_path):
    clean = compile_object(tmp_path, "clean", CLEAN, "avx512", "lto")
    leak = compile_object(tmp_path, "leak", INLINE_LEAK, "avx2", "lto")
    res = run_checker(clean, leak)
    assert res.returncode == 1
    assert str(leak) in res.stderr and str(clean) not in res.stderr


def test_object_without_entry_points_is_an_error(tmp_path):
    obj = compile_object(tmp_path, "empty", EMPTY, "avx2", "plain")
    res = run_checker(obj)
    assert res.returncode not in (0, 1), res.stdout + res.stderr


def test_every_per_isa_source_is_in_cmakelists():
    sources = check_isa_symbols.per_isa_sources()
    names = {p.name for p in sources}
    # The files this check was written for must be found (a broken glob would check nothing).
    assert {"gemm_ukernel__avx512.cpp", "conv2d_depthwise__avx2.cpp", "pool2d__avx512.cpp",
            "probe__scalar.cpp"} <= names
    cmakelists = (ROOT / "CMakeLists.txt").read_text()
    for src in sources:
        assert src.as_posix() in cmakelists, f"{src} is not compiled by CMakeLists.txt"
