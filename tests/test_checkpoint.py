import json

import pytest
import torch
from safetensors.torch import save_file

import ganforge
from ganforge import checkpoint, config, train
from ganforge.checkpoint import CheckpointError


def test_round_trip_restores_everything(tiny_1d):
    run = train.train(config.apply_overrides(tiny_1d, ["model.ema=0.5"]))
    tensors, state = checkpoint.load(run.out / train.CHECKPOINT)
    assert state["step"] == 40 and state["config"] == config.to_dict(run.cfg)
    fresh = train.build(run.cfg)
    train.restore_run(fresh, tensors, state)
    for a, b in [(run.G, fresh.G), (run.D, fresh.D), (run.G_ema, fresh.G_ema)]:
        for pa, pb in zip(a.state_dict().values(), b.state_dict().values(), strict=True):
            assert torch.equal(pa, pb)
    assert fresh.opt_g.state_dict()["state"][0]["step"] == run.opt_g.state_dict()["state"][0]["step"]


def test_file_holds_no_pickle_and_json_metadata(tiny_1d):
    run = train.train(tiny_1d)
    raw = (run.out / train.CHECKPOINT).read_bytes()
    header_len = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + header_len])
    meta = header["__metadata__"]
    assert meta["format"] == "ganforge.checkpoint" and meta["schema"] == str(checkpoint.SCHEMA)
    assert json.loads(meta["state"])["step"] == 40


def test_crash_mid_write_keeps_last_good(tiny_1d, monkeypatch):
    run = train.train(tiny_1d)
    path = run.out / train.CHECKPOINT
    good = path.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint, "save_file", boom)
    with pytest.raises(OSError):
        train.save_run(run)
    assert path.read_bytes() == good


def test_old_schema_is_migrated(tmp_path, tiny_1d):
    run = train.train(config.apply_overrides(tiny_1d, ["model.ema=0.5"]))
    tensors, state = checkpoint.load(run.out / train.CHECKPOINT)
    old = {("ema." + k[6:] if k.startswith("g_ema.") else k): v.contiguous() for k, v in tensors.items()}
    state.pop("sampler")  # schema 0: no data cursor, and the data kind instead of the family
    state["data_kind"] = {"points": "1d"}[state.pop("family")]
    save_file(old, str(tmp_path / "old.safetensors"),
              metadata={"format": checkpoint.FORMAT, "schema": "0", "state": json.dumps(state)})
    tensors0, state0 = checkpoint.load(tmp_path / "old.safetensors")
    assert set(tensors0) == set(tensors) and state0["sampler_cursor"] is None
    s = ganforge.load(tmp_path / "old.safetensors")
    assert s.ema and s.sample(3).shape == (3, 1)


def test_errors_are_clear(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        checkpoint.load(tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a file")
    with pytest.raises(CheckpointError, match="is not a readable safetensors file"):
        checkpoint.load(tmp_path / "junk.safetensors")
    save_file({"a": torch.zeros(1)}, str(tmp_path / "future.safetensors"),
              metadata={"format": checkpoint.FORMAT, "schema": "99", "state": "{}"})
    with pytest.raises(CheckpointError, match="schema 99, newer than this ganforge"):
        checkpoint.load(tmp_path / "future.safetensors")
