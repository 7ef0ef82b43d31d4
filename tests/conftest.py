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


@pytest.fixture(params=convforge.info()["backends"])
def backend(request):
    """Runs the test once per backend that executes ops on NumPy arrays: 'cpu' and, where built,
    'cuda-emulated'. Keep shapes small in tests that use it: emulation is slow."""
    with convforge.host_backend(request.param):
        yield request.param
