"""Saving and loading state dicts as ``.npz`` files, safely.

The loader never unpickles and checks every member's header and size against the archive
before allocating, so a truncated, oversized or inconsistent file fails with a ValueError."""

import os
import struct
import zipfile
import zlib
from collections import OrderedDict

import numpy as np
from numpy.lib import format as npy_format

MAX_BYTES = 1 << 32  # 4 GiB in total: VGG-16 in float64 is ~1.1 GB
_DTYPE_KINDS = "fiub"  # float, signed, unsigned, bool; never objects, strings or structs


def save(state_dict, file):
    """Write a state dict (name -> array) to ``file`` as an uncompressed ``.npz``."""
    arrays = OrderedDict()
    for key, value in state_dict.items():
        array = np.asarray(getattr(value, "data", value))
        if array.dtype.kind not in _DTYPE_KINDS:
            raise TypeError(f"state_dict[{key!r}]: expected a numeric array, got dtype {array.dtype}")
        arrays[str(key)] = array
    if isinstance(file, (str, os.PathLike)):
        with open(file, "wb") as f:  # exactly this name: np.savez would append '.npz'
            np.savez(f, **arrays)
    else:
        np.savez(file, **arrays)


# what zipfile raises on damaged archives (encrypted flag set, bad compression method, ...)
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, NotImplementedError, RuntimeError,
               zlib.error, struct.error, UnicodeDecodeError, OverflowError)


def _fail(file, message):
    raise ValueError(f"{file}: not a valid convforge state dict: {message}")


def _read_member(archive, info, file, budget):
    with archive.open(info) as f:
        try:
            version = npy_format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = npy_format.read_array_header_1_0(f)
            elif version in ((2, 0), (3, 0)):
                shape, fortran, dtype = npy_format.read_array_header_2_0(f)
            else:
                _fail(file, f"{info.filename}: unsupported .npy version {version}")
        except ValueError as error:
            _fail(file, f"{info.filename}: bad .npy header ({error})")
        header_bytes = f.tell()
        if dtype.hasobject or dtype.kind not in _DTYPE_KINDS or dtype.fields is not None:
            _fail(file, f"{info.filename}: dtype {dtype} is not a plain numeric type")
        if any(not isinstance(d, int) or d < 0 for d in shape):
            _fail(file, f"{info.filename}: bad shape {shape}")
        count = 1
        for d in shape:
            count *= d
        nbytes = count * dtype.itemsize
        if header_bytes + nbytes != info.file_size:
            _fail(file, f"{info.filename}: header says {nbytes} data bytes, member holds "
                        f"{info.file_size - header_bytes}")
        if nbytes > budget:
            _fail(file, f"{info.filename}: {nbytes} bytes exceeds the remaining byte limit ({budget})")
        data = f.read(nbytes)
        if len(data) != nbytes:
            _fail(file, f"{info.filename}: truncated data")
    array = np.frombuffer(data, dtype=dtype, count=count)
    array = array.reshape(shape[::-1]).T if fortran else array.reshape(shape)
    return np.array(array), nbytes  # a writable, owned copy


def load(file, max_bytes=MAX_BYTES):
    """Read a ``.npz`` state dict written by :func:`save` (or ``np.savez``) into an ordered
    dict of arrays. Pickled or object arrays are refused; sizes are checked before reading."""
    name = os.fspath(file) if isinstance(file, (str, os.PathLike)) else getattr(file, "name", "<file>")
    try:
        archive = zipfile.ZipFile(file)
    except FileNotFoundError:
        raise
    except _ZIP_ERRORS as error:
        _fail(name, f"not a .npz archive ({error})")
    result = OrderedDict()
    budget = max_bytes
    with archive:
        try:
            for info in archive.infolist():
                if not info.filename.endswith(".npy") or info.is_dir():
                    _fail(name, f"unexpected member {info.filename!r}")
                key = info.filename[:-4]
                if key in result:
                    _fail(name, f"duplicate key {key!r}")
                result[key], nbytes = _read_member(archive, info, name, budget)
                budget -= nbytes
        except _ZIP_ERRORS as error:
            _fail(name, f"corrupt archive ({error})")
    return result


def load_torch(file):
    """Read a state dict saved with ``torch.save`` (a torchvision checkpoint, say) into an ordered
    dict of NumPy arrays. Needs torch; loads with ``weights_only=True``, so no code is unpickled.
    A checkpoint that wraps its state dict (``{"state_dict": ...}`` or ``{"model": ...}``) is
    unwrapped."""
    try:
        import torch
    except ImportError:
        raise ImportError("load_torch needs torch (pip install 'convforge[torch]'); or convert the "
                          "checkpoint to .npz where torch is installed and use convforge.nn.load") from None
    state = torch.load(file, map_location="cpu", weights_only=True)
    for wrapper in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict):
        raise ValueError(f"{file}: expected a state dict, got {type(state).__name__}")
    result = OrderedDict()
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"{file}: state_dict[{key!r}] is a {type(value).__name__}, not a tensor")
        result[str(key)] = value.detach().cpu().numpy().copy()
    return result
