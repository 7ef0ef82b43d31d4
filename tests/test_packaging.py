"""Packaging, as a release and a new user see it: `python -m build` makes the sdist and then the
wheel from that sdist (so the sdist is proven complete by a full build, CUDA included); auditwheel
repairs the wheel to a manylinux one; the repaired wheel goes into a fresh virtual environment
whose PATH has no compiler, and tools/wheel_smoke.py runs there. The wheel is built once per run
(a few minutes: nvcc compiles the kernels for five architectures).

CONVFORGE_TEST_DIST=DIR uses the sdist and wheel that `python -m build --outdir DIR` made before
instead of building them again. `pytest -m "not packaging"` leaves these tests out locally."""

import os
import re
import shutil
import struct
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CUDA_SASS = {75, 80, 86, 89, 90}  # CMakeLists.txt: 75-real 80-real 86-real 89-real 90
CUDA_PTX = {90}
# What a source build reads; everything else tracked (tests, bench and its results, tools,
# examples, CI) stays out of the sdist.
SDIST_TOP_FILES = {"CMakeLists.txt", "pyproject.toml", "README.md"}
SDIST_DIRS = ("csrc/", "python/")

pytestmark = pytest.mark.packaging


def run(cmd, timeout=1200, **kwargs):
    """Runs a command; on failure the assertion shows its output."""
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, **kwargs)
    assert done.returncode == 0, (f"{' '.join(map(str, cmd))} exited {done.returncode}\n"
                                  f"--- stdout\n{done.stdout[-6000:]}\n--- stderr\n{done.stderr[-6000:]}")
    return done


@pytest.fixture(scope="module")
def dists(tmp_path_factory):
    """(sdist, wheel): the wheel built from the sdist, with the CUDA kernels required."""
    given = os.environ.get("CONVFORGE_TEST_DIST")
    out = Path(given) if given else tmp_path_factory.mktemp("dist")
    if not given:
        env = dict(os.environ, CMAKE_BUILD_PARALLEL_LEVEL=os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL", "2"))
        started = time.perf_counter()
        run([sys.executable, "-m", "build", "--outdir", out, "-Ccmake.define.CONVFORGE_CUDA=ON", ROOT], env=env,
            timeout=1800)
        print(f"\npython -m build (sdist, then the wheel from it): {time.perf_counter() - started:.0f} s")
    sdists, wheels = sorted(out.glob("convforge-*.tar.gz")), sorted(out.glob("convforge-*.whl"))
    assert len(sdists) == 1 and len(wheels) == 1, f"expected one sdist and one wheel in {out}, got {sdists + wheels}"
    return sdists[0], wheels[0]


@pytest.fixture(scope="module")
def repaired(dists, tmp_path_factory):
    """The wheel after `auditwheel repair`, and what `auditwheel show` said of it before."""
    wheel = dists[1]
    out = tmp_path_factory.mktemp("wheelhouse")
    shown = run([sys.executable, "-m", "auditwheel", "show", wheel]).stdout
    run([sys.executable, "-m", "auditwheel", "repair", "--wheel-dir", out, wheel])
    found = sorted(out.glob("*.whl"))
    assert len(found) == 1, f"auditwheel repair: expected one wheel, got {found}"
    return found[0], shown


def tracked_files():
    return run(["git", "ls-files"], cwd=ROOT).stdout.split()


def test_sdist_holds_what_a_source_build_needs_and_nothing_else(dists):
    sdist = dists[0]
    with tarfile.open(sdist) as tar:
        names = [m.name for m in tar.getmembers() if m.isfile()]
    top = f"{sdist.name[:-len('.tar.gz')]}/"
    assert all(n.startswith(top) for n in names), f"sdist members outside {top}"
    got = {n[len(top):] for n in names} - {"PKG-INFO"}
    want = {f for f in tracked_files() if f in SDIST_TOP_FILES or f.startswith(SDIST_DIRS)}
    assert not got - want, f"the sdist holds files a build does not need: {sorted(got - want)}"
    assert not want - got, f"the sdist lacks tracked build files: {sorted(want - got)}"
    assert any(n.endswith("csrc/cuda/runtime.cu") for n in got)


def _fatbin_entries(so_path):
    """(kind, sm) of every entry in the module's CUDA fat binaries: kind 'sass' (an ELF cubin)
    or 'ptx'. Layout: a 16-byte header (magic 0xBA55ED50, version, header size, payload size)
    then entries (kind u16: 1 PTX, 2 ELF; header size u32 at 4; payload size u64 at 8; the
    architecture u32 at 28)."""
    from elftools.elf.elffile import ELFFile  # auditwheel's dependency

    with open(so_path, "rb") as f:
        section = ELFFile(f).get_section_by_name(".nv_fatbin")
        assert section is not None, "the module has no CUDA fat binary (.nv_fatbin)"
        data = section.data()
    entries, pos = [], 0
    while pos + 16 <= len(data):
        magic, _, header, size = struct.unpack_from("<IHHQ", data, pos)
        if magic != 0xBA55ED50:
            pos += 8  # fat binaries are 8-byte aligned in the section
            continue
        entry, end = pos + header, pos + header + size
        while entry < end:
            kind, _, entry_header, payload = struct.unpack_from("<HHIQ", data, entry)
            arch = struct.unpack_from("<I", data, entry + 28)[0]
            entries.append(({1: "ptx", 2: "sass"}.get(kind, kind), arch))
            entry += entry_header + payload
        pos = end
    return entries


def test_wheel_carries_every_kernel_and_links_no_cuda_library(dists, tmp_path):
    wheel = dists[1]
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        modules = [n for n in names if re.fullmatch(r"convforge/_C\..*\.so", n)]
        assert len(modules) == 1, f"expected one compiled module, got {modules}"
        so = Path(z.extract(modules[0], tmp_path))
    sources = {f[len("python/"):] for f in tracked_files() if f.startswith("python/convforge/") and f.endswith(".py")}
    assert sources <= set(names), f"the wheel lacks {sorted(sources - set(names))}"
    print(f"\nwheel {wheel.name}: {wheel.stat().st_size / 2**20:.1f} MiB, module {so.stat().st_size / 2**20:.1f} MiB")

    entries = _fatbin_entries(so)
    fatbins = entries.count(("ptx", 90))  # one per .cu file
    assert fatbins >= 4, f"expected the runtime, gemm, conv2d and pool2d kernels, got {entries}"
    assert {a for k, a in entries if k == "sass"} == CUDA_SASS
    assert {a for k, a in entries if k == "ptx"} == CUDA_PTX
    assert len(entries) == fatbins * (len(CUDA_SASS) + len(CUDA_PTX)), f"an architecture is missing somewhere: {entries}"

    needed = run(["readelf", "-d", so]).stdout if shutil.which("readelf") else ""
    libraries = re.findall(r"\(NEEDED\).*\[(.+?)\]", needed) or _needed_from_elf(so)
    assert libraries, "no dynamic dependencies found"
    assert not [n for n in libraries if "cuda" in n or "nvrtc" in n], \
        f"the CUDA runtime must be static and the driver loaded only at run time, got {libraries}"


def _needed_from_elf(so):
    from elftools.elf.elffile import ELFFile

    with open(so, "rb") as f:
        return [t.needed for t in ELFFile(f).get_section_by_name(".dynamic").iter_tags() if t.entry.d_tag == "DT_NEEDED"]


def test_auditwheel_repairs_it_to_manylinux(repaired):
    wheel, shown = repaired
    print("\nauditwheel show (before repair):\n" + shown)
    assert re.search(r"-manylinux_2_\d+_x86_64\.whl$", wheel.name), wheel.name
    after = run([sys.executable, "-m", "auditwheel", "show", wheel]).stdout
    tag = re.search(r"manylinux_2_\d+_x86_64", wheel.name).group(0)
    assert f'"{tag}"' in " ".join(after.split()), after
    print(f"repaired: {wheel.name}, {wheel.stat().st_size / 2**20:.1f} MiB")


def test_wheel_works_in_a_fresh_environment_without_a_compiler(repaired, tmp_path):
    wheel = repaired[0]
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", venv])
    bin_dir = venv / "bin"
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME") and not k.startswith("CONVFORGE_")}
    env.update(PATH=str(bin_dir), PIP_DISABLE_PIP_VERSION_CHECK="1")
    python = bin_dir / "python"
    for tool in ("cc", "gcc", "c++", "g++", "nvcc", "cmake"):
        assert shutil.which(tool, path=env["PATH"]) is None, f"{tool} is on the fresh environment's PATH"

    # Binaries only: nothing may be compiled on the way in.
    started = time.perf_counter()
    run([python, "-m", "pip", "install", "--only-binary", ":all:", wheel], env=env, cwd=tmp_path)
    installed = time.perf_counter() - started
    run([python, "-c", "import convforge; convforge.info()"], env=env, cwd=tmp_path)
    print(f"\npip install {wheel.name} (with NumPy) + first import: {time.perf_counter() - started:.1f} s "
          f"(install {installed:.1f} s)")

    run([python, "-m", "pip", "install", "--only-binary", ":all:", f"{wheel}[demo]"], env=env, cwd=tmp_path)
    smoke = run([python, ROOT / "tools" / "wheel_smoke.py", "--expect-cuda", "--no-compiler"], env=env, cwd=tmp_path)
    print(smoke.stdout)
    assert "wheel smoke: all checks passed" in smoke.stdout


def test_cibuildwheel_builds_cpython_310_to_313_on_linux_x86_64():
    import tomllib

    cibw = shutil.which("cibuildwheel", path=str(Path(sys.executable).parent)) or shutil.which("cibuildwheel")
    assert cibw, "cibuildwheel is installed but its command is not found"
    listed = run([cibw, "--print-build-identifiers", "--platform", "linux"], cwd=ROOT).stdout.split()
    assert listed == [f"cp3{v}-manylinux_x86_64" for v in (10, 11, 12, 13)], listed

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["cibuildwheel"]
    # The release wheels are built and smoke-tested as this file builds and tests its wheel.
    assert config["config-settings"] == {"cmake.define.CONVFORGE_CUDA": "ON"}
    assert config["test-command"] == "python {project}/tools/wheel_smoke.py --expect-cuda"
    assert config["test-extras"] == ["demo"]
    assert (ROOT / "tools" / "wheel_smoke.py").is_file()
    before_all = config["linux"]["before-all"]
    script = re.search(r"\{project\}/(\S+)", before_all).group(1)
    assert (ROOT / script).is_file(), before_all
