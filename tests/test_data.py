"""The IDX reader, the MNIST and digits loaders, and the .npz state-dict files: round trips, and
truncated, oversized, inconsistent or pickled files rejected with a clear error."""

import gzip
import io
import struct
import zipfile

import numpy as np
import pytest

import convforge.nn as nn
from convforge import data, models
from convforge.data import DataError, read_idx


def idx_bytes(array, type_code=0x08, dims=None):
    dims = array.shape if dims is None else dims
    header = bytes([0, 0, type_code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims)
    return header + array.astype(data.IDX_TYPES[type_code]).tobytes()


def write(path, payload, gz=False):
    path.write_bytes(gzip.compress(payload) if gz else payload)
    return path


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("type_code,dtype", [(0x08, np.uint8), (0x09, np.int8), (0x0B, np.int16),
                                             (0x0C, np.int32), (0x0D, np.float32), (0x0E, np.float64)])
def test_idx_round_trip(tmp_path, gz, type_code, dtype):
    array = (np.arange(2 * 3 * 4) - 5).reshape(2, 3, 4).astype(dtype)
    if dtype == np.uint8:
        array = np.abs(array)
    path = write(tmp_path / ("x.idx" + (".gz" if gz else "")), idx_bytes(array, type_code), gz)
    got = read_idx(path)
    assert got.dtype == dtype and got.shape == (2, 3, 4) and np.array_equal(got, array)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_truncated_at_every_length(tmp_path, gz):
    payload = idx_bytes(np.arange(24, dtype=np.uint8).reshape(2, 3, 4))
    for n in range(len(payload)):
        path = write(tmp_path / ("t.gz" if gz else "t"), payload[:n], gz)
        with pytest.raises(DataError, match="truncated|not an IDX|rank"):
            read_idx(path)


def test_idx_truncated_gzip_stream(tmp_path):
    compressed = gzip.compress(idx_bytes(np.arange(600, dtype=np.uint8).reshape(6, 10, 10)))
    for n in (5, len(compressed) // 2, len(compressed) - 3):
        path = tmp_path / "cut.gz"
        path.write_bytes(compressed[:n])
        with pytest.raises(DataError, match="gzip|truncated"):
            read_idx(path)


@pytest.mark.parametrize("payload,message", [
    (b"\x01\x02\x08\x01\x00\x00\x00\x01\x00", "not an IDX file"),
    (b"\x00\x00\x07\x01\x00\x00\x00\x01\x00", "unknown IDX data type"),
    (b"\x00\x00\x08\x00", "unsupported IDX rank"),
    (b"\x00\x00\x08\x09" + b"\x00" * 36, "unsupported IDX rank"),
    (idx_bytes(np.zeros(4, np.uint8), dims=(5,)), "header declares shape"),  # fewer bytes than declared
    (idx_bytes(np.zeros(6, np.uint8), dims=(5,)), "header declares shape"),  # more bytes than declared
    (idx_bytes(np.zeros(0, np.uint8), dims=(65535, 65535, 65535)), "more than the"),  # never allocated
])
def test_idx_malformed(tmp_path, payload, message):
    with pytest.raises(DataError, match=message):
        read_idx(write(tmp_path / "bad", payload))


def test_idx_gzip_trailing_and_oversized(tmp_path):
    with pytest.raises(DataError, match="trailing bytes"):
        read_idx(write(tmp_path / "x.gz", idx_bytes(np.zeros(6, np.uint8), dims=(5,)), gz=True))
    with pytest.raises(DataError, match="more than the"):
        read_idx(write(tmp_path / "y.gz", idx_bytes(np.zeros(0, np.uint8), dims=(70000, 70000)), gz=True))
    with pytest.raises(DataError, match="gzip"):
        read_idx(write(tmp_path / "z.gz", b"this is not gzip at all"))


def test_idx_random_bytes(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(200):
        payload = bytes([0, 0]) + rng.integers(0, 256, size=int(rng.integers(0, 40)), dtype=np.uint8).tobytes()
        path = write(tmp_path / f"r{i % 2}{'.gz' if i % 2 else ''}", payload, gz=bool(i % 2))
        try:
            read_idx(path)
        except DataError:
            pass


def write_mnist(directory, n_train=12, n_test=5, gz=True, spelled=("-idx", "-idx")):
    rng = np.random.default_rng(1)
    directory.mkdir(exist_ok=True)
    for split, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        suffix = ".gz" if gz else ""
        write(directory / f"{split}-images{spelled[0]}3-ubyte{suffix}", idx_bytes(images), gz)
        write(directory / f"{split}-labels{spelled[1]}1-ubyte{suffix}", idx_bytes(labels), gz)
    return directory


@pytest.mark.parametrize("gz", [False, True])
def test_load_mnist(tmp_path, gz):
    dataset = data.load(f"mnist:{write_mnist(tmp_path / 'mnist', gz=gz, spelled=('-idx', '.idx'))}")
    assert dataset.train_images.shape == (12, 1, 32, 32) and dataset.test_images.shape == (5, 1, 32, 32)
    assert dataset.train_images.dtype == np.float32 and dataset.train_labels.dtype == np.int64
    assert abs(dataset.train_images.mean()) < 1e-5 and abs(dataset.train_images.std() - 1) < 1e-4
    border = dataset.train_images[:, :, :2, :]
    assert np.allclose(border, border.flat[0])  # the 2-pixel padding holds one value (zero before scaling)


def test_load_mnist_errors(tmp_path):
    with pytest.raises(DataError, match="no such directory"):
        data.load(f"mnist:{tmp_path / 'absent'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="missing train-images-idx3-ubyte"):
        data.load(f"mnist:{tmp_path / 'empty'}")
    bad = write_mnist(tmp_path / "bad", gz=False)
    write(bad / "train-labels-idx1-ubyte", idx_bytes(np.zeros(11, np.uint8)))
    with pytest.raises(DataError, match="12 images but 11 labels"):
        data.load(f"mnist:{bad}")
    write(bad / "train-labels-idx1-ubyte", idx_bytes(np.full(12, 10, np.uint8)))
    with pytest.raises(DataError, match="expected classes 0-9"):
        data.load(f"mnist:{bad}")
    write(bad / "train-labels-idx1-ubyte", idx_bytes(np.zeros((12, 1), np.uint8)))
    with pytest.raises(DataError, match="expected \\(N,\\) uint8"):
        data.load(f"mnist:{bad}")
    with pytest.raises(DataError, match="expected 'digits' or 'mnist:DIR'"):
        data.load("cifar")


def test_digits():
    dataset = data.load_digits()
    assert dataset.train_images.shape == (1438, 1, 32, 32) and dataset.test_images.shape == (359, 1, 32, 32)
    assert set(np.unique(dataset.train_labels)) == set(range(10))
    again = data.load_digits()
    assert np.array_equal(dataset.test_labels, again.test_labels)  # a fixed split
    small = dataset.limit(10)
    assert len(small.train_images) == len(small.test_labels) == 10


# ------------------------------------------------------------------------------------------------
# .npz state dicts


def test_save_load_round_trip(tmp_path):
    nn.manual_seed(0)
    model = models.lenet5()
    path = tmp_path / "model.npz"
    nn.save(model.state_dict(), path)
    loaded = nn.load(path)
    assert list(loaded) == list(model.state_dict())
    other = models.lenet5()
    other.load_state_dict(loaded)
    x = np.random.default_rng(0).standard_normal((3, 1, 32, 32)).astype(np.float32)
    assert np.array_equal(model(x), other(x))
    buffer = io.BytesIO()  # file objects work too; np.load reads what nn.save writes
    nn.save(model.state_dict(), buffer)
    buffer.seek(0)
    assert np.array_equal(np.load(buffer)["0.weight"], model[0].weight.data)


def test_load_refuses_pickles_and_objects(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, w=np.array([{"a": 1}, None], dtype=object))  # an object array is a pickle
    with pytest.raises(ValueError, match="not a plain numeric type"):
        nn.load(path)
    with pytest.raises(TypeError, match="numeric array"):
        nn.save({"w": np.array(["text"])}, tmp_path / "s.npz")


def npz_with(path, name, payload):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(name, payload)
    return path


def npy(array):
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


@pytest.mark.parametrize("name,payload,message", [
    ("w.npy", npy(np.zeros(10, np.float32))[:-8], "header says 40 data bytes"),
    ("w.npy", npy(np.zeros(10, np.float32)) + b"\0" * 4, "header says 40 data bytes"),
    ("w.npy", npy(np.zeros(10, np.float32)).replace(b"(10,)", b"(99,)"), "header says 396 data bytes"),
    ("w.npy", npy(np.zeros(10, np.float32)).replace(b"(10,)", b"(10**9,)"), "bad .npy header"),
    ("w.npy", b"not an npy file", "bad .npy header"),
    ("w.txt", npy(np.zeros(1)), "unexpected member"),
    ("w.npy", npy(np.zeros(4, "U3")), "not a plain numeric type"),
])
def test_load_rejects_malformed_members(tmp_path, name, payload, message):
    with pytest.raises(ValueError, match=message):
        nn.load(npz_with(tmp_path / "bad.npz", name, payload))


def test_load_rejects_oversized_and_truncated_archives(tmp_path):
    huge = npy(np.zeros(1, np.float32)).replace(b"(1,)", b"(4000000000,)")  # 16 GB declared
    with pytest.raises(ValueError, match="header says|limit"):
        nn.load(npz_with(tmp_path / "huge.npz", "w.npy", huge))
    path = tmp_path / "ok.npz"
    nn.save({"w": np.arange(1000, dtype=np.float32)}, path)
    assert np.array_equal(nn.load(path, max_bytes=4000)["w"], np.arange(1000, dtype=np.float32))
    with pytest.raises(ValueError, match="limit"):
        nn.load(path, max_bytes=3999)
    whole = path.read_bytes()
    for n in (0, 10, len(whole) // 2, len(whole) - 10):
        cut = tmp_path / "cut.npz"
        cut.write_bytes(whole[:n])
        with pytest.raises(ValueError, match="not a valid convforge state dict"):
            nn.load(cut)


def test_digits_match_scikit_learn():
    from sklearn.datasets import load_digits

    images, labels = data._digits_arrays()
    bunch = load_digits()
    assert np.array_equal(images, bunch.images) and np.array_equal(labels, bunch.target)


def test_npz_random_and_flipped_bytes(tmp_path):
    path = tmp_path / "m.npz"
    nn.save({"a": np.arange(30, dtype=np.float32).reshape(5, 6), "b": np.ones(4)}, path)
    whole = bytearray(path.read_bytes())
    rng = np.random.default_rng(0)
    for i in range(400):
        damaged = bytearray(whole)
        for position in rng.integers(0, len(damaged), size=int(rng.integers(1, 4))):
            damaged[position] = int(rng.integers(0, 256))
        if i % 3 == 0:
            damaged = rng.integers(0, 256, size=int(rng.integers(0, 300)), dtype=np.uint8).tobytes()
        bad = tmp_path / "bad.npz"
        bad.write_bytes(bytes(damaged))
        try:
            result = nn.load(bad)
        except ValueError:
            continue
        assert set(result) <= {"a", "b"}  # a flip in unused zip fields can leave a valid file
