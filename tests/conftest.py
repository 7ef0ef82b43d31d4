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
