import errno
import json
import os
import stat

import pytest
import torch
from safetensors.torch import save as st_bytes
from safetensors.torch import save_file
from torch import nn

import ganforge
from ganforge import checkpoint, config, train
from ganforge.checkpoint import CheckpointError, NonFiniteError

STATE = {"config": {"x": 1}, "step": 5, "opt_g": {}, "opt_d": {}, "data_shape": [2], "family": "points",
         "num_classes": 0, "sampler": {"epoch": 0, "cursor": 3}}


def _tensors(seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {"g.w": torch.randn(3, 4, generator=gen), "g.b": torch.randn(4, generator=gen),
            "rng.torch": torch.arange(200, dtype=torch.uint8), "sampler.perm": torch.randperm(10, generator=gen)}


def _assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert set(a) == set(b)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


def _one_line(e: pytest.ExceptionInfo) -> str:
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def _data_start(raw: bytes) -> int:
    return 8 + int.from_bytes(raw[:8], "little")


# ---------------------------------------------------------------------------------------------------
# Whole runs (train.save_run / restore_run use this module)


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
    # the checkpoint at step 20 was kept as .prev when step 40's replaced it
    _, prev_state = checkpoint.load(checkpoint.previous_path(run.out / train.CHECKPOINT))
    assert prev_state["step"] == 20


def test_file_holds_no_pickle_and_json_metadata(tiny_1d):
    run = train.train(tiny_1d)
    raw = (run.out / train.CHECKPOINT).read_bytes()
    header_len = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + header_len])
    meta = header["__metadata__"]
    assert meta["format"] == "ganforge.checkpoint" and meta["schema"] == str(checkpoint.SCHEMA)
    assert json.loads(meta["state"])["step"] == 40
    assert len(meta["sha256"]) == 64


def test_crash_mid_write_keeps_last_good(tiny_1d, monkeypatch):
    run = train.train(tiny_1d)
    path = run.out / train.CHECKPOINT
    good = path.read_bytes()

    def boom(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint, "save_file", boom)
    with pytest.raises(OSError) as e:  # CheckpointWriteError is both a CheckpointError and an OSError
        train.save_run(run)
    assert isinstance(e.value, CheckpointError) and e.value.errno == errno.ENOSPC
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
    assert set(tensors0) == set(tensors) and "sampler" not in state0 and state0["family"] == "points"
    s = ganforge.load(tmp_path / "old.safetensors")
    assert s.ema and s.sample(3).shape == (3, 1)


def test_schema_1_is_migrated_and_resumes_on_its_saved_batch_order(tmp_path, tiny_1d):
    run = train.train(config.apply_overrides(tiny_1d, ["train.steps=7", f'train.out="{tmp_path / "r"}"']))
    tensors, state = checkpoint.load(run.out / train.CHECKPOINT)
    perm = torch.randperm(len(run.data), generator=torch.Generator().manual_seed(9))
    state["data_kind"] = {"points": "1d"}[state.pop("family")]
    state["sampler_cursor"] = state.pop("sampler")["cursor"]
    tensors["sampler.perm"] = perm  # schema 1 kept the epoch's order as a tensor
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(run.out / train.CHECKPOINT),
              metadata={"format": checkpoint.FORMAT, "schema": "1", "state": json.dumps(state)})
    resumed = train.resume(run.out, ["train.steps=8"])
    assert resumed.step == 7 and resumed.data.family.name == "points"
    cursor = resumed.sampler.cursor
    torch.testing.assert_close(resumed.sampler.next(), perm[cursor : cursor + resumed.cfg.train.batch_size])


def test_errors_are_clear(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        checkpoint.load(tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a file")
    with pytest.raises(CheckpointError, match=r"junk.safetensors is not a safetensors file \(its length field"):
        checkpoint.load(tmp_path / "junk.safetensors")
    save_file({"a": torch.zeros(1)}, str(tmp_path / "future.safetensors"),
              metadata={"format": checkpoint.FORMAT, "schema": "99", "state": "{}"})
    with pytest.raises(CheckpointError) as e:
        checkpoint.load(tmp_path / "future.safetensors")
    assert _one_line(e) == (f"{tmp_path / 'future.safetensors'} was written by a newer ganforge "
                            f"(schema 99 > {checkpoint.SCHEMA}): upgrade ganforge to read it")


# ---------------------------------------------------------------------------------------------------
# Reading: round trip, integrity


def test_round_trip_of_every_dtype_is_exact(tmp_path):
    tensors = {"f32": torch.randn(2, 3), "f64": torch.randn(3, dtype=torch.float64), "f16": torch.randn(4).half(),
               "bf16": torch.randn(5).bfloat16(), "i64": torch.arange(-3, 3), "i32": torch.arange(4, dtype=torch.int32),
               "u8": torch.arange(250, 256, dtype=torch.uint8), "bool": torch.tensor([True, False, True]),
               "scalar": torch.tensor(2.5), "empty": torch.zeros(0, 3), "c64": torch.randn(2, dtype=torch.complex64),
               "strided": torch.randn(4, 6)[:, ::2]}
    checkpoint.save(tmp_path / "c.safetensors", tensors, STATE)
    loaded, state = checkpoint.load(tmp_path / "c.safetensors")
    _assert_same(loaded, {k: v.contiguous() for k, v in tensors.items()})
    assert state == STATE
    assert [loaded[k].dtype for k in tensors] == [v.dtype for v in tensors.values()]
    loaded["f32"].add_(1)  # tensors own writable memory (an optimizer updates them in place)


def test_file_without_digest_still_loads(tmp_path):
    """Files of ganforge before the sha256 (and files written by plain safetensors) are read unverified."""
    meta = {"format": checkpoint.FORMAT, "schema": str(checkpoint.SCHEMA), "state": json.dumps(STATE)}
    save_file(_tensors(), str(tmp_path / "old.safetensors"), metadata=meta)
    tensors, state = checkpoint.load(tmp_path / "old.safetensors")
    _assert_same(tensors, _tensors())
    assert state == STATE


def test_bit_flip_in_tensor_data_is_a_checksum_mismatch(tmp_path):
    """Fails on the code before: a flipped bit in the weights loaded silently."""
    path = tmp_path / "c.safetensors"
    checkpoint.save(path, _tensors(), STATE)
    raw = bytearray(path.read_bytes())
    raw[_data_start(raw) + 5] ^= 0x10
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError) as e:
        checkpoint.load(path)
    assert _one_line(e) == f"{path} is corrupt (checksum mismatch: its bytes changed after it was written)"


def test_dtype_flipped_in_header_is_caught(tmp_path):
    """F32 -> I32 in the header keeps every size valid: the digest catches it, and check_tensors for old files."""
    path = tmp_path / "c.safetensors"
    checkpoint.save(path, _tensors(), STATE)
    raw = path.read_bytes()
    assert raw.count(b'"F32"') == 2
    path.write_bytes(raw.replace(b'"F32"', b'"I32"', 1))
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        checkpoint.load(path)

    meta = {"format": checkpoint.FORMAT, "schema": str(checkpoint.SCHEMA), "state": json.dumps(STATE)}
    save_file(_tensors(), str(path), metadata=meta)  # no digest
    path.write_bytes(path.read_bytes().replace(b'"F32"', b'"I32"', 1))
    tensors, _ = checkpoint.load(path)  # structurally valid: loads
    g = nn.Linear(3, 4)
    spec = {"w": (torch.float32, (3, 4)), "b": (torch.float32, (4,))}
    assert checkpoint.state_dict_spec(g) == {"weight": (torch.float32, (4, 3)), "bias": (torch.float32, (4,))}
    flipped = next(k for k in ("g.b", "g.w") if tensors[k].dtype == torch.int32)
    with pytest.raises(CheckpointError) as e:
        checkpoint.check_tensors(checkpoint.prefixed(tensors, "g"), spec, f"{path} (generator)")
    assert _one_line(e) == f"{path} (generator): {flipped[2:]} has dtype int32, expected float32"


def test_check_tensors_names_the_first_problem():
    spec = checkpoint.state_dict_spec(nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3)))
    good = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3)).state_dict()
    checkpoint.check_tensors(good, spec, "G")  # no error
    cases = [
        ({k: v for k, v in good.items() if not k.startswith("1.")}, "G: tensor 1.weight is missing (and 4 more)"),
        (good | {"1.num_batches_tracked": torch.tensor(0.0)}, "G: 1.num_batches_tracked has dtype float32, "
                                                              "expected int64"),
        (good | {"0.weight": torch.zeros(2, 3)}, "G: 0.weight has shape (2, 3), expected (3, 2)"),
        (good | {"2.weight": torch.zeros(1)}, "G: unexpected tensor 2.weight"),
    ]
    for tensors, message in cases:
        with pytest.raises(CheckpointError) as e:
            checkpoint.check_tensors(tensors, spec, "G")
        assert _one_line(e) == message


@pytest.mark.parametrize(("state_text", "problem"), [
    ('{"step": 5,', "'state' is not valid JSON: Expecting property name enclosed in double quotes at char 11"),
    ("[1, 2]", "'state' is a JSON list, not an object"),
    ('{"step": ' + "9" * 5000 + "}", "'state' is not valid JSON: Exceeds the limit (4300 digits) for integer string "
                                    "conversion: value has 5000 digits"),
    ("[" * 100_000, "'state' is not valid JSON: nested too deeply"),
    (json.dumps({k: v for k, v in STATE.items() if k != "config"}),
     "state has no 'config', which every training checkpoint has"),
    (json.dumps(STATE | {"step": "x"}), "state 'step' is \"x\", expected an integer"),
    (json.dumps(STATE | {"step": -1}), "state 'step' is -1"),
    (json.dumps(STATE | {"data_shape": [0]}), "state 'data_shape' is [0], expected sizes"),
    (json.dumps(STATE | {"opt_g": None}), "state 'opt_g' is null, expected a JSON object"),
])
def test_damaged_state_is_one_line(tmp_path, state_text, problem):
    """Fails on the code before: JSONDecodeError tracebacks, or a KeyError later in restore_run."""
    path = tmp_path / "c.safetensors"
    meta = {"format": checkpoint.FORMAT, "schema": str(checkpoint.SCHEMA), "state": state_text}
    checkpoint.atomic_save(_tensors(), path, meta)
    with pytest.raises(CheckpointError) as e:
        checkpoint.load(path)
    assert _one_line(e) == f"{path} has damaged metadata ({problem})"


@pytest.mark.parametrize(("meta", "problem"), [
    ({"format": checkpoint.FORMAT, "schema": "x", "state": "{}"}, "has damaged metadata (schema is 'x', not a whole "
                                                                   "number)"),
    ({"format": checkpoint.FORMAT, "schema": "-1", "state": "{}"}, "has damaged metadata (schema is '-1', not a whole "
                                                                    "number)"),
    ({"format": checkpoint.FORMAT, "schema": "1"}, "has damaged metadata (no 'state' entry)"),
    ({"format": "other.tool", "schema": "1", "state": "{}"}, "is not a ganforge checkpoint (format: 'other.tool')"),
    ({}, "is not a ganforge checkpoint (format: None)"),
    ({"format": checkpoint.EXPORT_FORMAT, "schema": "1", "state": json.dumps({"config": {}, "step": 1})},
     "has damaged metadata (state has no 'data_shape', which every exported generator has)"),
])
def test_damaged_metadata_is_one_line(tmp_path, meta, problem):
    path = tmp_path / "c.safetensors"
    checkpoint.atomic_save(_tensors(), path, meta)
    with pytest.raises(CheckpointError) as e:
        checkpoint.read(path)
    assert _one_line(e) == f"{path} {problem}"


# ---------------------------------------------------------------------------------------------------
# The previous checkpoint


def test_corrupt_checkpoint_offers_the_intact_previous_one(tmp_path):
    """Fails on the code before: nothing kept the checkpoint a save replaced."""
    path = tmp_path / "checkpoint.safetensors"
    checkpoint.save(path, _tensors(0), STATE | {"step": 1})
    checkpoint.save(path, _tensors(1), STATE | {"step": 2})
    prev = tmp_path / "checkpoint.prev.safetensors"
    assert checkpoint.previous_path(path) == prev
    assert checkpoint.load(prev)[1]["step"] == 1 and checkpoint.load(path)[1]["step"] == 2
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 1
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError) as e:
        checkpoint.load(path)
    assert _one_line(e) == (f"{path} is corrupt (checksum mismatch: its bytes changed after it was written); "
                            f"the previous checkpoint {prev} is intact: copy it over, or resume from it")
    # the damaged file is not rotated into .prev: the next save keeps the last good one there
    checkpoint.save(path, _tensors(2), STATE | {"step": 3})
    assert checkpoint.load(prev)[1]["step"] == 1 and checkpoint.load(path)[1]["step"] == 3
    path.unlink()
    with pytest.raises(CheckpointError, match=f"no checkpoint at {path}; the previous checkpoint {prev} is intact"):
        checkpoint.load(path)


def test_a_complete_checkpoint_exists_at_every_instant(tmp_path, monkeypatch):
    """Check path and .prev around every rename and link a save does: one of them always reads back intact."""
    path = tmp_path / "checkpoint.safetensors"
    prev = checkpoint.previous_path(path)
    checkpoint.save(path, _tensors(0), STATE | {"step": 1})
    real_replace, real_link, seen = os.replace, os.link, []

    def intact() -> list[int]:
        steps = []
        for p in (path, prev):
            try:
                steps.append(checkpoint.load(p)[1]["step"])
            except CheckpointError:
                pass
        assert steps, "no intact checkpoint on disk"
        seen.append(steps)
        return steps

    def replace(src, dst):
        intact()
        real_replace(src, dst)
        intact()

    def link(src, dst):
        intact()
        real_link(src, dst)
        intact()

    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(os, "link", link)
    for step in (2, 3):
        checkpoint.save(path, _tensors(step), STATE | {"step": step})
    assert seen[-1] == [3, 2] and len(seen) == 12  # per save: link .prev, rename .prev, rename the new file


# ---------------------------------------------------------------------------------------------------
# Writing: atomic, unique temporary names, one-line system errors, finite values


def _half_writer(tensors, filename, metadata=None):
    """A writer that dies after writing half the file it was given (a full disk mid-write)."""
    data = st_bytes(tensors, metadata=metadata)
    with open(filename, "wb") as f:
        f.write(data[: len(data) // 2])
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_half_written_file_never_replaces_the_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.safetensors"
    checkpoint.save(path, _tensors(0), STATE)
    good = path.read_bytes()
    monkeypatch.setattr(checkpoint, "save_file", _half_writer)
    with pytest.raises(CheckpointError) as e:
        checkpoint.save(path, _tensors(1), STATE | {"step": 6})
    assert _one_line(e) == (f"cannot write checkpoint {path}: No space left on device; "
                            "the previous checkpoint is intact")
    assert path.read_bytes() == good
    _assert_same(checkpoint.load(path)[0], _tensors(0))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.safetensors"]


def test_an_in_place_writer_fails_the_same_check(tmp_path):
    """Control for the test above: writing straight to the checkpoint's own name leaves it damaged."""
    path = tmp_path / "checkpoint.safetensors"
    checkpoint.save(path, _tensors(0), STATE)
    good = path.read_bytes()
    with pytest.raises(OSError):
        _half_writer(_tensors(1), path, {"format": checkpoint.FORMAT})  # what a non-atomic save would do
    assert path.read_bytes() != good
    with pytest.raises(CheckpointError, match="is corrupt"):
        checkpoint.load(path)


def test_a_writer_that_silently_writes_half_is_caught_by_the_read_back(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.safetensors"
    checkpoint.save(path, _tensors(0), STATE)
    good = path.read_bytes()

    def silent_half_writer(tensors, filename, metadata=None):
        with pytest.raises(OSError):
            _half_writer(tensors, filename, metadata)

    monkeypatch.setattr(checkpoint, "save_file", silent_half_writer)
    with pytest.raises(CheckpointError) as e:
        checkpoint.save(path, _tensors(1), STATE)
    assert _one_line(e).startswith(f"cannot write checkpoint {path}: the written file is corrupt (truncated")
    assert _one_line(e).endswith("; the previous checkpoint is intact")
    assert path.read_bytes() == good and len(list(tmp_path.iterdir())) == 1


def test_temporary_names_are_unique_per_writer(tmp_path, monkeypatch):
    """Fails on the code before: every writer used '<name>.tmp', so two writers clobbered each other's file."""
    path = tmp_path / "checkpoint.safetensors"
    other = tmp_path / "checkpoint.safetensors.tmp"
    other.write_bytes(b"another writer's half-written file")
    names = []

    def recording_writer(tensors, filename, metadata=None):
        names.append(os.path.basename(filename))
        save_file(tensors, filename, metadata=metadata)

    monkeypatch.setattr(checkpoint, "save_file", recording_writer)
    checkpoint.save(path, _tensors(0), STATE)
    checkpoint.save(path, _tensors(1), STATE)
    assert other.read_bytes() == b"another writer's half-written file"
    assert len(set(names)) == 2 and all(n.startswith("checkpoint.safetensors.") and n.endswith(".tmp") for n in names)
    assert "checkpoint.safetensors.tmp" not in names


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EACCES, errno.EROFS, errno.EDQUOT])
def test_system_refusals_are_one_line(tmp_path, monkeypatch, code):
    path = tmp_path / "sub" / "checkpoint.safetensors"

    def refuse(*a, **k):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(checkpoint, "save_file", refuse)
    with pytest.raises(CheckpointError) as e:
        checkpoint.save(path, _tensors(), STATE)
    assert _one_line(e) == f"cannot write checkpoint {path}: {os.strerror(code)}; nothing was written"
    assert e.value.errno == code and list(path.parent.iterdir()) == []


def test_unwritable_folder_is_one_line(tmp_path, monkeypatch):
    """The temporary file cannot even be created (as in a read-only folder; root ignores real permissions)."""
    import tempfile

    def refuse(*a, **k):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(tmp_path))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    path = tmp_path / "c.safetensors"
    with pytest.raises(CheckpointError) as e:
        checkpoint.save(path, _tensors(), STATE)
    assert _one_line(e) == f"cannot write checkpoint {path}: Permission denied; nothing was written"


def test_non_finite_weights_are_never_saved(tmp_path):
    """Fails on the code before: NaN weights were saved as the new 'good' checkpoint."""
    path = tmp_path / "checkpoint.safetensors"
    checkpoint.save(path, _tensors(0), STATE)
    good = path.read_bytes()
    for value, kind in [(float("nan"), "NaN"), (float("inf"), "infinite")]:
        bad = _tensors(1)
        bad["g.w"][1, 2] = value
        with pytest.raises(NonFiniteError) as e:
            checkpoint.save(path, bad, STATE)
        assert _one_line(e) == (f"refusing to save {path}: tensor g.w holds {kind} values (1 of 12 not finite); "
                                "the previous checkpoint is intact")
        assert path.read_bytes() == good
    half = {"h": torch.tensor([1.0, float("nan")], dtype=torch.bfloat16)}
    with pytest.raises(NonFiniteError, match="tensor h holds NaN values"):
        checkpoint.save(tmp_path / "x.safetensors", half, STATE)
    assert not (tmp_path / "x.safetensors").exists()
    big = {"h": torch.full((4,), 60000.0, dtype=torch.float16)}  # finite values whose float16 sum overflows
    checkpoint.save(tmp_path / "x.safetensors", big, STATE)
    _assert_same(checkpoint.load(tmp_path / "x.safetensors")[0], big)


def test_saved_files_get_the_usual_permissions(tmp_path):
    """mkstemp makes 0600 files; a checkpoint should be readable like any file the user writes."""
    old = os.umask(0o022)
    try:
        checkpoint.save(tmp_path / "c.safetensors", _tensors(), STATE)
        checkpoint.save(tmp_path / "c.safetensors", _tensors(), STATE)
    finally:
        os.umask(old)
    for name in ("c.safetensors", "c.prev.safetensors"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644


def test_export_files_carry_a_digest(tmp_path):
    path = tmp_path / "G.safetensors"
    state = {"config": {}, "step": 3, "data_shape": [1], "data_kind": "1d"}
    checkpoint.atomic_save({"w": torch.ones(2)}, path, {"format": checkpoint.EXPORT_FORMAT, "schema": "1",
                                                       "state": json.dumps(state)})
    assert checkpoint.read(path)[0] == checkpoint.EXPORT_FORMAT
    assert not checkpoint.previous_path(path).exists()  # only training checkpoints keep a .prev
    with pytest.raises(CheckpointError, match="is an exported generator, not a training checkpoint"):
        checkpoint.load(path)
    raw = bytearray(path.read_bytes())
    raw[-2] ^= 0x80
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        checkpoint.read(path)
