"""Hostile files: the IDX reader (convforge.data) and the .npz state-dict loader
(convforge.nn.serialization) get random, truncated, bit-flipped and lying files. They must either
return plain numeric arrays or raise ValueError (DataError is one), never unpickle, and never
allocate what a header claims before checking it against the file."""

import gzip
import io
import pickle
import struct
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convforge import data
from convforge.nn import serialization


def scaled(fraction):
    return settings(max_examples=max(5, int(settings.default.max_examples * fraction)))


def idx_bytes(array):
    codes = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D,
             np.float64: 0x0E}
    header = bytes([0, 0, codes[array.dtype.type], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


VALID_IDX = idx_bytes(np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4))


def read_idx_bytes(tmp_path, payload, gz=False):
    path = tmp_path / ("f.idx.gz" if gz else "f.idx")
    path.write_bytes(gzip.compress(payload) if gz else payload)
    try:
        result = data.read_idx(path)
    except ValueError:  # DataError
        return None
    assert isinstance(result, np.ndarray) and result.dtype.kind in "uif"
    return result


def test_idx_round_trip(tmp_path):
    np.testing.assert_array_equal(read_idx_bytes(tmp_path, VALID_IDX), np.arange(24).reshape(2, 3, 4))
    np.testing.assert_array_equal(read_idx_bytes(tmp_path, VALID_IDX, gz=True), np.arange(24).reshape(2, 3, 4))


@given(st.binary(max_size=64), st.booleans())
@scaled(0.5)
def test_idx_random_bytes(tmp_path_factory, payload, gz):
    read_idx_bytes(tmp_path_factory.mktemp("idx"), payload, gz)


@given(st.integers(0, len(VALID_IDX) - 1), st.booleans())
@scaled(0.25)
def test_idx_truncated(tmp_path_factory, cut, gz):
    assert read_idx_bytes(tmp_path_factory.mktemp("idx"), VALID_IDX[:cut], gz) is None


@given(st.integers(0, len(VALID_IDX) - 1), st.integers(1, 255))
@scaled(0.25)
def test_idx_bit_flips(tmp_path_factory, where, xor):
    payload = bytearray(VALID_IDX)
    payload[where] ^= xor
    read_idx_bytes(tmp_path_factory.mktemp("idx"), bytes(payload))


@pytest.mark.parametrize("dims", [(2**31, 2**31), (4_000_000_000,), (60000, 28, 28, 1_000_000)])
def test_idx_lying_header_fails_before_allocating(tmp_path, dims):
    header = bytes([0, 0, 0x0D, len(dims)]) + struct.pack(f">{len(dims)}I", *dims)
    with pytest.raises(data.DataError):
        data.read_idx(_write(tmp_path / "big.idx", header + b"\0" * 64))


def _write(path, payload):
    path.write_bytes(payload)
    return path


# ----------------------------------------------------------------------------------------------
# .npz state dicts


def npz_bytes(**arrays):
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


VALID_NPZ = npz_bytes(weight=np.arange(6, dtype=np.float32).reshape(2, 3), bias=np.ones(2))


def load_bytes(payload):
    try:
        result = serialization.load(io.BytesIO(payload))
    except ValueError:
        return None
    for value in result.values():
        assert isinstance(value, np.ndarray) and value.dtype.kind in "fiub" and not value.dtype.hasobject
    return result


def test_npz_round_trip():
    loaded = load_bytes(VALID_NPZ)
    np.testing.assert_array_equal(loaded["weight"], np.arange(6).reshape(2, 3))


@given(st.binary(max_size=256))
@scaled(0.5)
def test_npz_random_bytes(payload):
    load_bytes(payload)


@given(st.integers(0, len(VALID_NPZ) - 1))
@scaled(0.25)
def test_npz_truncated(cut):
    assert load_bytes(VALID_NPZ[:cut]) is None


@given(st.integers(0, len(VALID_NPZ) - 1), st.integers(1, 255))
@scaled(0.5)
def test_npz_bit_flips(where, xor):
    payload = bytearray(VALID_NPZ)
    payload[where] ^= xor
    load_bytes(bytes(payload))


class Trap:
    """Unpickling this would record that a pickle ran."""
    ran = False

    def __reduce__(self):
        return (Trap._spring, ())

    @staticmethod
    def _spring():
        Trap.ran = True
        return 0


def test_npz_never_unpickles():
    payload = npz_bytes(weight=np.array([Trap()], dtype=object))
    assert load_bytes(payload) is None
    # a raw pickle stored as a member
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("weight.npy", pickle.dumps(Trap()))
    assert load_bytes(buffer.getvalue()) is None
    assert not Trap.ran


@pytest.mark.parametrize("shape", ["(2**40,)", "(100000, 100000, 100000)"])
def test_npz_lying_header_fails_before_allocating(shape):
    header = ("{'descr': '<f4', 'fortran_order': False, 'shape': " + shape + ", }").encode()
    header = header + b" " * (63 - (10 + len(header)) % 64) + b"\n"
    member = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + b"\0" * 16
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("weight.npy", member)
    assert load_bytes(buffer.getvalue()) is None
