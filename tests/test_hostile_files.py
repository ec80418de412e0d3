"""Files planted where a checkpoint should be: each is refused in one line naming it, and none runs code."""

import gzip
import io
import json
import pickle
import tempfile
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save as st_bytes

import ganforge
from ganforge import checkpoint
from ganforge.checkpoint import CheckpointError
from ganforge.cli import main

STATE = {"config": {}, "step": 5, "opt_g": {}, "opt_d": {}, "data_shape": [2], "family": "points"}


class Planted:
    """Unpickling this creates the marker file: proof that something unpickled a planted file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return Path.touch, (self.marker,)


def _safetensors(header: dict | str, data: bytes = b"") -> bytes:
    raw = (header if isinstance(header, str) else json.dumps(header)).encode()
    return len(raw).to_bytes(8, "little") + raw + data


def _tensor(dtype: str, shape: list, offsets: list) -> dict:
    return {"dtype": dtype, "shape": shape, "data_offsets": offsets}


def _good() -> bytes:
    """A small valid checkpoint, with its digest, as bytes."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "c.safetensors"
        checkpoint.save(path, {"g.w": torch.arange(12.0).reshape(3, 4), "sampler.perm": torch.arange(5)}, STATE)
        return path.read_bytes()


def hostile_files(marker: Path) -> dict[str, tuple[bytes, str]]:
    """name -> (file bytes, words the refusal must contain)."""
    good = _good()
    torch_zip, torch_legacy = io.BytesIO(), io.BytesIO()
    torch.save({"w": torch.zeros(2), "x": Planted(marker)}, torch_zip)
    torch.save({"w": torch.zeros(2), "x": Planted(marker)}, torch_legacy, _use_new_zipfile_serialization=False)
    npy = io.BytesIO()
    np.save(npy, np.zeros(3))
    f32 = lambda shape, offsets: _tensor("F32", shape, offsets)  # noqa: E731
    return {
        "empty": (b"", "only 0 bytes long"),
        "five bytes": (b"\x10\x00\x00\x00\x00", "only 5 bytes long"),
        "text": (b"not a checkpoint, just text\n", "not a safetensors file (its length field"),
        "pickle": (pickle.dumps(Planted(marker)), "looks like a pickle); ganforge never unpickles"),
        "pickle protocol 0": (pickle.dumps(Planted(marker), protocol=0), "not a safetensors file"),
        "torch.save (zip)": (torch_zip.getvalue(), "looks like a zip archive (torch.save writes those)"),
        "torch.save (legacy)": (torch_legacy.getvalue(), "looks like a pickle); ganforge never unpickles"),
        "numpy .npy": (npy.getvalue(), "looks like a numpy .npy file"),
        "gzipped checkpoint": (gzip.compress(good), "looks like a gzip file"),
        "length field 2**63": ((2**63).to_bytes(8, "little") + b"{}", "over the 104857600-byte limit"),
        "header past the end": ((99_000_000).to_bytes(8, "little") + b"{}", "truncated: its header needs"),
        "header not JSON": ((6).to_bytes(8, "little") + b"{nope}", "its header is not JSON"),
        "header not UTF-8": ((4).to_bytes(8, "little") + b"{\xff\xfe}", "its header is not UTF-8"),
        "header a list": (_safetensors([]), "its header is a JSON list, not an object"),  # type: ignore[arg-type]
        "metadata not strings": (_safetensors({"__metadata__": {"format": 1}}), "__metadata__ is not a map"),
        "tensor not an object": (_safetensors({"a": [1, 2]}), "tensor 'a' lacks dtype, shape or data_offsets"),
        "unknown dtype": (_safetensors({"a": _tensor("F99", [1], [0, 4])}, b"\0" * 4), "has dtype 'F99'"),
        "4-bit dtype": (_safetensors({"a": _tensor("F4", [2], [0, 1])}, b"\0"), "has dtype 'F4'"),
        "negative size": (_safetensors({"a": f32([-1], [0, 4])}, b"\0" * 4), "not a list of sizes"),
        "bool size": (_safetensors({"a": f32([True], [0, 4])}, b"\0" * 4), "not a list of sizes"),
        "reversed offsets": (_safetensors({"a": f32([0], [4, 0])}, b"\0" * 4), "has data_offsets [4, 0]"),
        "three offsets": (_safetensors({"a": f32([1], [0, 4, 8])}, b"\0" * 8), "has data_offsets"),
        "absurd shape": (_safetensors({"a": f32([2**40, 2**40], [0, 2**82])}, b"\0" * 4),
                         "ends at byte 4835703278458516698824704 of a data area of 4"),
        "size mismatch": (_safetensors({"a": f32([3], [0, 8])}, b"\0" * 8), "needs 12 bytes, its data_offsets span 8"),
        "overlap": (_safetensors({"a": f32([2], [0, 8]), "b": f32([2], [4, 12])}, b"\0" * 12),
                    "tensors 'a' and 'b' overlap"),
        "gap": (_safetensors({"a": f32([1], [0, 4]), "b": f32([1], [8, 12])}, b"\0" * 12),
                "4 bytes before tensor 'b' belong to no tensor"),
        "trailing bytes": (good + b"appended", "8 bytes after the last tensor belong to no tensor"),
        "duplicate name": (_safetensors('{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, '
                                        '"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}', b"\0" * 8),
                           "its header names 'a' twice"),
        "integer of 5000 digits": (_safetensors('{"a": {"dtype": "F32", "shape": [' + "9" * 5000 + '], '
                                                '"data_offsets": [0, 4]}}', b"\0" * 4),
                                   "its header is not JSON: Exceeds the limit (4300 digits)"),
        "nested 100000 deep": (_safetensors("[" * 100_000 + "]" * 100_000),
                               "its header is not JSON: nested too deeply"),
        "65 dimensions": (_safetensors({"a": f32([1] * 65, [0, 4])}, b"\0" * 4), "not a list of sizes"),
        "megabyte name": (_safetensors({"\n" * 1_000_000: f32([1], [0, 8])}, b"\0" * 8),
                          "is corrupt (tensor '\\n\\n"),
        "foreign safetensors": (st_bytes({"a": torch.zeros(1)}), "is not a ganforge checkpoint (format: None)"),
        "truncated in the header": (good[:40], "truncated: its header needs"),
        "truncated in the data": (good[:-3], "truncated: tensor"),
    }


@pytest.fixture
def marker(tmp_path) -> Path:
    return tmp_path / "UNPICKLED"


@pytest.mark.parametrize("name", list(hostile_files(Path("x"))))
def test_hostile_file_is_refused_in_one_line(tmp_path, marker, name):
    data, words = hostile_files(marker)[name]
    path = tmp_path / "checkpoint.safetensors"
    path.write_bytes(data)
    with pytest.raises(CheckpointError) as e:
        checkpoint.read(path)
    msg = str(e.value)
    assert msg.startswith(f"{path} ") and words in msg and "\n" not in msg and len(msg) < len(str(path)) + 250
    with pytest.raises(CheckpointError, match="^" + str(path)):
        ganforge.load(tmp_path)  # the sampling entry point, from the run folder
    assert not marker.exists()


def test_planted_pickles_are_never_unpickled(tmp_path, marker, capsys):
    """The marker test can fail: unpickling the planted files does create the marker."""
    files = hostile_files(marker)
    pickle.loads(files["pickle"][0])
    assert marker.exists()
    marker.unlink()
    torch.load(io.BytesIO(files["torch.save (zip)"][0]), weights_only=False)
    assert marker.exists()
    marker.unlink()

    for name in ("pickle", "torch.save (zip)", "torch.save (legacy)"):
        (tmp_path / "run").mkdir(exist_ok=True)
        (tmp_path / "run" / "checkpoint.safetensors").write_bytes(files[name][0])
        assert main(["sample", str(tmp_path / "run"), "--out", str(tmp_path / "s.npy")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "ganforge never unpickles" in err and "Traceback" not in err
        assert main(["export", str(tmp_path / "run"), "--out", str(tmp_path / "G.safetensors")]) == 2
        assert "ganforge never unpickles" in capsys.readouterr().err
    assert not marker.exists()


def test_every_truncation_is_refused(tmp_path):
    good = _good()
    path = tmp_path / "c.safetensors"
    for n in range(len(good)):
        path.write_bytes(good[:n])
        with pytest.raises(CheckpointError) as e:
            checkpoint.read(path)
        assert str(e.value).startswith(f"{path} ") and "\n" not in str(e.value)


def test_every_single_bit_flip_is_refused_or_harmless(tmp_path):
    """Flip each bit of a small checkpoint in turn: each read refuses in one line, or returns the same data.

    The only harmless flips are in the name of the digest's own key (the file then reads as one without
    a digest, whose data are intact).
    """
    good = _good()
    path = tmp_path / "c.safetensors"
    path.write_bytes(good)
    _, want_tensors, want_state = checkpoint.read(path)
    key_at = good.index(b'"sha256"')
    refused = harmless = 0
    for i in range(len(good) * 8):
        raw = bytearray(good)
        raw[i // 8] ^= 1 << (i % 8)
        path.write_bytes(bytes(raw))
        try:
            _, tensors, state = checkpoint.read(path)
        except CheckpointError as e:
            assert str(e).startswith(f"{path} ") and "\n" not in str(e)
            refused += 1
            continue
        assert key_at < i // 8 < key_at + 7
        assert state == want_state and set(tensors) == set(want_tensors)
        assert all(torch.equal(tensors[k], want_tensors[k]) for k in tensors)
        harmless += 1
    assert refused + harmless == len(good) * 8 and harmless <= 6 * 8


def test_absurd_declared_sizes_allocate_nothing(tmp_path):
    """A tiny file whose header declares terabytes is refused without allocating them (or reading the file)."""
    path = tmp_path / "c.safetensors"
    path.write_bytes(_safetensors({"a": _tensor("F32", [2**38], [0, 2**40])}, b"\0" * 4))
    long_header = tmp_path / "h.safetensors"
    long_header.write_bytes((99_000_000).to_bytes(8, "little") + b"{" + b" " * 100)
    tracemalloc.start()
    for p in (path, long_header):
        with pytest.raises(CheckpointError, match="truncated"):
            checkpoint.read(p)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 1_000_000


def test_a_valid_file_whose_length_field_starts_like_a_pickle_loads(tmp_path):
    """The header length's low byte can be 0x80, pickle's first byte: such a file is still a checkpoint."""
    path = tmp_path / "c.safetensors"
    for pad in range(300):
        state = dict(STATE, pad="x" * pad)
        checkpoint.atomic_save({"g.w": torch.ones(2)}, path, {"format": checkpoint.FORMAT,
                                                               "schema": str(checkpoint.SCHEMA),
                                                               "state": json.dumps(state)})
        if path.read_bytes()[0] == 0x80:
            break
    assert path.read_bytes()[0] == 0x80
    assert checkpoint.read(path)[2]["pad"] == state["pad"]
