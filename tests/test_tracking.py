"""TensorBoard logging: event files read back with tensorboard's own reader."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from ganforge import tracking

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402


def _read(run_dir) -> EventAccumulator:
    keep_all = {"images": 0, "scalars": 0, "tensors": 0}
    acc = EventAccumulator(str(run_dir / "tensorboard"), size_guidance=keep_all)
    acc.Reload()
    return acc


def test_scalars_image_and_text_read_back(tmp_path):
    w = tracking.open_writer(tmp_path)
    assert isinstance(w, tracking.TensorBoardWriter)
    w.text("config", 'preset = ""\n[train]\nsteps = 3')
    recs = [{"step": 10, "loss_d": 1.25, "loss_g": 0.75, "d_real": 0.5, "grad_norm_g": 3.0, "lr_g": 2e-4,
             "time": 1.7e9, "eval": {"fid": 12.5}},
            {"step": 20, "loss_d": 1.5, "loss_g": 0.5, "d_real": 0.625, "grad_norm_g": 2.0, "lr_g": 2e-4,
             "time": 1.7e9, "eval/kid": 0.25}]
    for r in recs:
        w.scalars(r["step"], r)
    png = tmp_path / "step_000020.png"
    pixels = np.zeros((6, 10, 3), np.uint8)
    pixels[:, :5, 0] = 255  # left half red
    Image.fromarray(pixels).save(png)
    w.image(20, "samples", png)
    w.close()

    acc = _read(tmp_path)
    tags = acc.Tags()
    assert set(tags["scalars"]) == {"loss/d", "loss/g", "D/real D(x)", "grad_norm/g", "lr/g", "eval/fid",
                                    "eval/kid"}
    assert [(e.step, e.value) for e in acc.Scalars("loss/d")] == [(10, 1.25), (20, 1.5)]
    assert [(e.step, e.value) for e in acc.Scalars("D/real D(x)")] == [(10, 0.5), (20, 0.625)]
    assert [(e.step, e.value) for e in acc.Scalars("eval/fid")] == [(10, 12.5)]
    assert [(e.step, e.value) for e in acc.Scalars("eval/kid")] == [(20, 0.25)]
    assert acc.Scalars("lr/g")[0].value == pytest.approx(2e-4, rel=1e-6)  # stored as float32
    (img,) = acc.Images("samples")
    assert (img.step, img.width, img.height) == (20, 10, 6)
    decoded = np.asarray(Image.open(io.BytesIO(img.encoded_image_string)).convert("RGB"))
    np.testing.assert_array_equal(decoded, pixels)
    (text,) = acc.Tensors("config/text_summary")
    assert text.tensor_proto.string_val[0].decode() == '    preset = ""\n    [train]\n    steps = 3\n'


def test_flatten_scalars_skips_bookkeeping_and_non_numbers():
    rec = {"step": 5, "time": 1.0, "loss_d": 1, "flag": True, "note": "x",
           "eval": {"fid": 2.0, "per": {"a": 3}}}
    assert tracking.flatten_scalars(rec) == {"loss/d": 1.0, "eval/fid": 2.0, "eval/per/a": 3.0}


def test_null_writer_when_disabled_or_unavailable(tmp_path, monkeypatch):
    w = tracking.open_writer(tmp_path, enabled=False)
    assert isinstance(w, tracking.NullWriter)
    w.scalars(1, {"loss_d": 1.0})
    w.image(1, "samples", tmp_path / "missing.png")  # does nothing, not even read the file
    w.text("config", "x")
    w.close()
    monkeypatch.setattr(tracking, "tensorboard_available", lambda: False)
    assert isinstance(tracking.open_writer(tmp_path), tracking.NullWriter)
    assert not (tmp_path / "tensorboard").exists()
