"""Data for the main job: scikit-learn's handwritten digits and MNIST / Fashion-MNIST IDX files.

Both come out as float32 (N, 1, 32, 32) images, standardised with the training set's mean and
standard deviation, and int64 labels: digits' 8x8 images are upsampled 4x, MNIST's 28x28 padded
by 2 (as LeNet-5 was fed). The IDX reader trusts nothing in a file: every header field and size
is checked against the file before anything is allocated."""

import gzip
import os
import struct
import zlib
from dataclasses import dataclass

import numpy as np


class DataError(ValueError):
    """A data set that is missing, truncated or malformed."""


@dataclass
class Dataset:
    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    num_classes: int = 10

    def limit(self, n):
        """The first ``n`` training and ``n`` test samples (for quick runs and tests)."""
        return Dataset(self.name, self.train_images[:n], self.train_labels[:n], self.test_images[:n],
                       self.test_labels[:n], self.num_classes)


# --------------------------------------------------------------------------------------------
# IDX

# type code -> big-endian dtype, as in the IDX format's definition
IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
IDX_MAX_BYTES = 1 << 30  # 1 GiB: MNIST's largest file holds 47 MB


def _read_exactly(f, n, path, what):
    data = f.read(n)
    if len(data) != n:
        raise DataError(f"{path}: truncated IDX file ({what}: expected {n} bytes, got {len(data)})")
    return data


def read_idx(path, max_bytes=IDX_MAX_BYTES):
    """Read an IDX file (raw, or gzip-compressed when its name ends in ``.gz``) into an array of
    its declared type and shape. Raises :class:`DataError` for a bad magic number, an unknown
    type, a size that disagrees with the file, or a truncated or oversized file."""
    path = os.fspath(path)
    gzipped = path.endswith(".gz")
    try:
        with (gzip.open(path, "rb") if gzipped else open(path, "rb")) as f:
            magic = _read_exactly(f, 4, path, "magic number")
            if magic[0] != 0 or magic[1] != 0:
                raise DataError(f"{path}: not an IDX file (magic number {magic.hex()}, expected 0000TTNN)")
            type_code, ndim = magic[2], magic[3]
            if type_code not in IDX_TYPES:
                raise DataError(f"{path}: unknown IDX data type 0x{type_code:02x}")
            if not 1 <= ndim <= 4:
                raise DataError(f"{path}: unsupported IDX rank {ndim} (expected 1 to 4)")
            shape = struct.unpack(f">{ndim}I", _read_exactly(f, 4 * ndim, path, "dimensions"))
            dtype = np.dtype(IDX_TYPES[type_code])
            nbytes = dtype.itemsize
            for d in shape:
                nbytes *= d
            if nbytes > max_bytes:
                raise DataError(f"{path}: header declares {nbytes} bytes of data, more than the "
                                f"{max_bytes}-byte limit")
            header = 4 + 4 * ndim
            if not gzipped:
                size = os.fstat(f.fileno()).st_size
                if size != header + nbytes:
                    problem = "truncated" if size < header + nbytes else "inconsistent"
                    raise DataError(f"{path}: {problem} IDX file: header declares shape {shape} "
                                    f"({header + nbytes} bytes) but the file has {size} bytes")
            data = _read_exactly(f, nbytes, path, f"data of shape {shape}")
            if f.read(1):
                raise DataError(f"{path}: trailing bytes after the data of shape {shape}")
    except (EOFError, zlib.error, gzip.BadGzipFile) as error:
        raise DataError(f"{path}: corrupt or truncated gzip stream ({error})") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, expected an IDX file") from None
    return np.frombuffer(data, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


# --------------------------------------------------------------------------------------------
# Data sets

MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def _find(directory, base):
    candidates = [base, base.replace("-idx", ".idx")]  # both spellings are in circulation
    for name in candidates:
        for suffix in ("", ".gz"):
            path = os.path.join(directory, name + suffix)
            if os.path.isfile(path):
                return path
    raise DataError(f"{directory}: missing {base} (or {base}.gz); expected the four MNIST IDX files "
                    f"{', '.join(MNIST_FILES.values())}")


def _standardise(train, test):
    mean, std = float(train.mean()), float(train.std())
    std = std if std > 0 else 1.0
    return ((train - mean) / std).astype(np.float32), ((test - mean) / std).astype(np.float32)


def load_mnist(directory):
    """MNIST or Fashion-MNIST from ``directory`` (the four IDX files, raw or gzipped)."""
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise DataError(f"{directory}: no such directory (expected the MNIST IDX files there)")
    arrays = {key: read_idx(_find(directory, base)) for key, base in MNIST_FILES.items()}
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim != 3 or images.dtype != np.uint8:
            raise DataError(f"{directory}: {split} images: expected (N, rows, cols) uint8, "
                            f"got {images.dtype} {images.shape}")
        if labels.ndim != 1 or labels.dtype != np.uint8:
            raise DataError(f"{directory}: {split} labels: expected (N,) uint8, got {labels.dtype} {labels.shape}")
        if len(images) != len(labels):
            raise DataError(f"{directory}: {split}: {len(images)} images but {len(labels)} labels")
        if labels.size and labels.max() > 9:
            raise DataError(f"{directory}: {split} labels: expected classes 0-9, found {labels.max()}")
        if images.shape[1:] != (28, 28):
            raise DataError(f"{directory}: {split} images: expected 28x28, got {images.shape[1:]}")
    if arrays["train_images"].shape[0] == 0:
        raise DataError(f"{directory}: the training set is empty")

    def prepare(images):
        x = np.zeros((len(images), 1, 32, 32), np.float32)
        x[:, 0, 2:30, 2:30] = images / np.float32(255.0)
        return x

    train, test = _standardise(prepare(arrays["train_images"]), prepare(arrays["test_images"]))
    return Dataset(f"mnist:{directory}", train, arrays["train_labels"].astype(np.int64), test,
                   arrays["test_labels"].astype(np.int64))


def _digits_arrays():
    """(images (1797, 8, 8) float64 in 0..16, labels). Reads the CSV that ships inside
    scikit-learn directly when it can: importing sklearn itself takes seconds."""
    import importlib.util

    spec = importlib.util.find_spec("sklearn")
    if spec is None:
        raise DataError("the digits data set needs scikit-learn: pip install 'convforge[demo]'")
    for location in spec.submodule_search_locations or []:
        path = os.path.join(location, "datasets", "data", "digits.csv.gz")
        if os.path.isfile(path):
            with gzip.open(path, "rt") as f:
                table = np.loadtxt(f, delimiter=",")
            if table.ndim == 2 and table.shape[1] == 65:
                return table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(np.int64)
    from sklearn.datasets import load_digits as sklearn_digits  # the file moved: ask sklearn

    bunch = sklearn_digits()
    return bunch.images, bunch.target.astype(np.int64)


def load_digits(test_fraction=0.2, split_seed=0):
    """scikit-learn's 1,797 handwritten 8x8 digits, upsampled to 32x32, split into a training and
    a test set by a fixed seed (so the test set does not change with the training seed)."""
    raw, labels = _digits_arrays()
    images = raw.astype(np.float32) / np.float32(16.0)
    order = np.random.default_rng(split_seed).permutation(len(images))
    n_test = int(round(len(images) * test_fraction))
    test_idx, train_idx = order[:n_test], order[n_test:]
    big = np.kron(images, np.ones((4, 4), np.float32))[:, None]  # 8x8 -> 32x32, nearest neighbour
    train, test = _standardise(big[train_idx], big[test_idx])
    return Dataset("digits", train, labels[train_idx], test, labels[test_idx])


def load(spec):
    """``'digits'`` or ``'mnist:DIR'`` -> :class:`Dataset`."""
    if spec == "digits":
        return load_digits()
    if spec.startswith("mnist:") and len(spec) > len("mnist:"):
        return load_mnist(spec[len("mnist:"):])
    raise DataError(f"--data: expected 'digits' or 'mnist:DIR', got {spec!r}")
