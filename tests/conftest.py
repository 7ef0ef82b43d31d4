import pytest

import convforge
from convforge import _C


@pytest.fixture(params=convforge.info()["supported_isas"])
def isa(request):
    """Runs the test once per CPU path this machine supports (scalar, avx2, avx512)."""
    previous = _C.get_isa()
    _C.set_isa(request.param)
    yield request.param
    _C.set_isa(previous)


@pytest.fixture
def threads():
    """Restores the thread count a test changes."""
    previous = convforge.get_num_threads()
    yield convforge.set_num_threads
    convforge.set_num_threads(previous)


# 'cuda' (the real GPU; NumPy arrays copied there and back) joins where a GPU is present, so the
# same op tests run on it (tools/gpu_check.sh).
BACKENDS = convforge.info()["backends"] + (["cuda"] if convforge.info()["cuda_devices"] > 0 else [])


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Runs the test once per backend that executes ops on NumPy arrays: 'cpu', where built
    'cuda-emulated', and 'cuda' on a machine with a GPU. Keep shapes small in tests that use it:
    emulation is slow."""
    with convforge.host_backend(request.param):
        yield request.param


# ----------------------------------------------------------------------------------------------
# Hypothesis profiles (tests/test_fuzz.py, tests/test_hostile_files.py). The default, "ci", is
# bounded and derandomized so CI is reproducible; select another with --hypothesis-profile=NAME:
# "long" explores thousands of cases per op with a fresh seed, "sanitize" is the small run under
# AddressSanitizer (tools/sanitize.sh). Test files scale max_examples per test from the profile.
from hypothesis import HealthCheck, settings  # noqa: E402

_slow_ok = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
settings.register_profile("ci", max_examples=200, deadline=None, derandomize=True,
                          suppress_health_check=_slow_ok, print_blob=True)
settings.register_profile("long", max_examples=4000, deadline=None,
                          suppress_health_check=_slow_ok, print_blob=True)
settings.register_profile("sanitize", max_examples=40, deadline=None, derandomize=True,
                          suppress_health_check=_slow_ok, print_blob=True)
settings.load_profile("ci")  # --hypothesis-profile overrides this after conftest is imported


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "no_sanitize: cannot run under AddressSanitizer (tools/sanitize.sh skips it)")
    config.addinivalue_line(
        "markers", "packaging: builds the sdist and wheel (minutes; deselect with -m 'not packaging')")
