import errno
import json
import math
import os
import stat
import tempfile

import numpy as np
import pytest
import torch

from ganforge import fsio


def _strict_loads(line: str):
    """json.loads that refuses NaN/Infinity, as standard JSON readers (jq, JavaScript) do."""
    def refuse(name):
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(line, parse_constant=refuse)


def test_atomic_write_text_and_bytes(tmp_path):
    path = tmp_path / "sub" / "notes.txt"
    assert fsio.atomic_write_text(path, "héllo\n") == path
    assert path.read_bytes() == "héllo\n".encode()
    fsio.atomic_write_bytes(path, b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"
    assert os.listdir(path.parent) == ["notes.txt"]


def test_atomic_copy(tmp_path):
    (tmp_path / "a").write_bytes(b"checkpoint bytes")
    (tmp_path / "b").write_bytes(b"older best")
    assert fsio.atomic_copy(tmp_path / "a", tmp_path / "b") == tmp_path / "b"
    assert (tmp_path / "b").read_bytes() == b"checkpoint bytes" and sorted(os.listdir(tmp_path)) == ["a", "b"]
    with pytest.raises(FileNotFoundError, match="missing"):
        fsio.atomic_copy(tmp_path / "missing", tmp_path / "b")
    assert (tmp_path / "b").read_bytes() == b"checkpoint bytes" and sorted(os.listdir(tmp_path)) == ["a", "b"]


def test_permissions_follow_the_umask_and_the_old_file(tmp_path):
    old = os.umask(0o027)
    try:
        fsio.atomic_write_text(tmp_path / "a", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o640
    os.chmod(tmp_path / "a", 0o600)
    fsio.atomic_write_text(tmp_path / "a", "y")
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o600


def test_failure_mid_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "state.json"
    path.write_text("old")
    with pytest.raises(fsio.WriteError) as e, fsio.atomic_path(path) as tmp:
        tmp.write_text("half of the n")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert str(e.value) == f"cannot write {path}: No space left on device"
    assert e.value.errno == errno.ENOSPC and isinstance(e.value, OSError)
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["state.json"]


def test_other_errors_pass_through_and_clean_up(tmp_path):
    path = tmp_path / "state.json"
    with pytest.raises(KeyboardInterrupt), fsio.atomic_path(path) as tmp:
        tmp.write_text("partial")
        raise KeyboardInterrupt
    assert os.listdir(tmp_path) == []


def test_refusals_are_one_line(tmp_path, monkeypatch):
    def refuse(*a, **k):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(tmp_path))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(fsio.WriteError) as e:
        fsio.atomic_write_text(tmp_path / "x.txt", "x")
    assert str(e.value) == f"cannot write {tmp_path / 'x.txt'}: Read-only file system"


def test_temporary_names_are_unique(tmp_path):
    with fsio.atomic_path(tmp_path / "a.txt") as t1, fsio.atomic_path(tmp_path / "a.txt") as t2:
        assert t1 != t2 and t1.parent == tmp_path and t1.name.startswith("a.txt.") and t1.name.endswith(".tmp")
        t1.write_text("one")
        t2.write_text("two")
    assert (tmp_path / "a.txt").read_text() == "one"  # the outer writer renamed last
    assert os.listdir(tmp_path) == ["a.txt"]


def test_append_jsonl_writes_standard_json(tmp_path):
    path = tmp_path / "m.jsonl"
    with open(path, "a") as f:
        fsio.append_jsonl(f, {"step": 1, "loss": float("nan"), "up": float("inf"), "down": -math.inf, "ok": 0.5})
        fsio.append_jsonl(f, {"step": np.int64(2), "x": np.float32(0.25), "t": torch.tensor(1.5),
                              "nested": {"v": [float("nan"), 1.0, (2, np.float64("inf"))]}, "flag": True})
    lines = path.read_text().splitlines()
    assert [_strict_loads(ln) for ln in lines] == [
        {"step": 1, "loss": None, "up": None, "down": None, "ok": 0.5},
        {"step": 2, "x": 0.25, "t": 1.5, "nested": {"v": [None, 1.0, [2, None]]}, "flag": True},
    ]


def test_append_jsonl_names_an_unwritable_value(tmp_path):
    with open(tmp_path / "m.jsonl", "a") as f, pytest.raises(TypeError) as e:
        fsio.append_jsonl(f, {"step": 1, "eval": {"fid": torch.ones(3)}})
    assert str(e.value) == "eval.fid: a Tensor cannot be written as JSON"
    assert (tmp_path / "m.jsonl").read_text() == ""  # nothing half-written


def test_read_jsonl_drops_a_cut_off_last_line(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"step": 1}\n{"step": 2}\n\n{"step": 3, "loss_d": 0.6')
    assert fsio.read_jsonl(path) == ([{"step": 1}, {"step": 2}], 1)
    path.write_bytes(b'{"step": 1}\n' + b"\x00" * 20)  # a crash can leave a tail of NUL bytes
    assert fsio.read_jsonl(path) == ([{"step": 1}], 1)
    path.write_bytes(b'{"step": 1}\n[1, 2]\n"text"\n\xff\xfe\n{"step": 4}')  # no final newline: still whole
    assert fsio.read_jsonl(path) == ([{"step": 1}, {"step": 4}], 3)
    path.write_text("")
    assert fsio.read_jsonl(path) == ([], 0)


def test_write_jsonl_round_trips(tmp_path):
    records = [{"step": 1, "loss": float("nan")}, {"step": 2, "loss": 0.5}]
    fsio.write_jsonl(tmp_path / "m.jsonl", records)
    assert fsio.read_jsonl(tmp_path / "m.jsonl") == ([{"step": 1, "loss": None}, {"step": 2, "loss": 0.5}], 0)
