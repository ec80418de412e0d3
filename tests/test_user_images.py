"""End to end on the user's own images: folders of PNG/JPEG (with corrupt files and an RGBA one) and RGB shapes.

Each run goes through the command line: train, sample (grid, PNG folder, --label by name), eval, resume,
interpolate and --init, as a user would.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import ganforge
from ganforge import config
from ganforge.cli import main
from ganforge.data import load_dataset
from tests.imagefolders import write_digit_folder, write_shapes_folder

TINY_DCGAN = ["model.z_dim=8", 'model.g={arch="dcgan", channels=8, norm="batch"}',
              'model.d={arch="dcgan", channels=8, activation="leaky_relu"}', "train.batch_size=16",
              "train.log_every=5", "train.sample_every=5", "train.ckpt_every=5", "train.num_samples=16",
              'train.progress="none"', "train.tensorboard=false"]


def _sets(items: list[str]) -> list[str]:
    return [a for item in items for a in ("--set", item)]


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return write_digit_folder(tmp_path_factory.mktemp("digits"), n_per_class=12, jpeg_share=0.25, corrupt=3, rgba=1)


@pytest.mark.parametrize("resolution, channels", [(28, 1), (32, 3)])
def test_digit_folder_end_to_end(tmp_path, capsys, digits, resolution, channels):
    out, cache = tmp_path / "run", tmp_path / "cache"
    data = [f"data.resolution={resolution}", f"data.channels={channels}", 'data.labels="folders"',
            f'data.cache="{cache}"', 'model.conditional="acgan"']
    argv = ["train", "--data", str(digits.root), "--steps", "10", "--out", str(out), *_sets(TINY_DCGAN + data)]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "skipped 3" in err and f"channels {channels}" in err  # the report of how the folder was read
    s = ganforge.load(out)
    assert s.data_shape == (channels, resolution, resolution) and s.class_names == [str(k) for k in range(10)]
    assert s.family.name == "images" and s.data_source["n"] == 120

    # sample: a class grid, a folder of PNGs, one class by name
    assert main(["sample", str(out), "-n", "20", "--out", str(tmp_path / "grid.png")]) == 0
    assert main(["sample", str(out), "-n", "5", "--label", "7", "--out", str(tmp_path / "sevens")]) == 0
    pngs = sorted((tmp_path / "sevens").glob("*.png"))
    assert len(pngs) == 5 and Image.open(pngs[0]).size == (resolution, resolution)
    assert len(np.asarray(Image.open(pngs[0])).shape) == (2 if channels == 1 else 3)

    # eval against the same folder (SWD needs no network; digit features read the 32 px images at 28)
    assert main(["eval", str(out), "-n", "64", "--metrics", "swd,fid,classes", "--features", "digit-cnn"]) == 0
    table = capsys.readouterr().out
    assert "swd" in table and "fid" in table and "classes" in table
    result = json.loads(next((out / "eval").glob("step_*.json")).read_text())
    assert result["provenance"]["dataset"]["path"] == str(digits.root)

    # resume, interpolate, init
    assert main(["train", "--resume", str(out), "--steps", "15"]) == 0 and ganforge.load(out).step == 15
    assert main(["interpolate", str(out), "--seeds", "1,2", "--frames", "3", "--label", "3",
                 "--out", str(tmp_path / "w.gif")]) == 0
    assert Image.open(tmp_path / "w.gif").n_frames >= 2
    fine = tmp_path / "fine"
    assert main(["train", "--data", str(digits.root), "--steps", "2", "--out", str(fine), "--init", str(out),
                 *_sets(TINY_DCGAN + data)]) == 0
    assert ganforge.load(fine).step == 2


def test_second_start_reads_the_cache_and_changed_data_is_refused(tmp_path, capsys):
    folder = write_digit_folder(tmp_path / "d", n_per_class=3, jpeg_share=0.0, corrupt=0, rgba=0, labels=False)
    cfg = config.from_dict({"data": {"path": str(folder.root), "cache": str(tmp_path / "cache")}})
    first, second = load_dataset(cfg.data), load_dataset(cfg.data)
    assert first.sha256() == second.sha256() and any("from the cache" in line for line in second.report)
    torch.testing.assert_close(first.x, second.x, rtol=0, atol=0)

    out = tmp_path / "run"
    assert main(["train", "--data", str(folder.root), "--steps", "2", "--out", str(out),
                 "--set", f'data.cache="{tmp_path / "cache"}"', *_sets(TINY_DCGAN)]) == 0
    Image.new("L", (28, 28), 255).save(folder.root / "extra.png")  # the data changes after training
    assert main(["eval", str(out), "-n", "16", "--metrics", "swd"]) == 2
    assert "the data at" in capsys.readouterr().err
    assert main(["train", "--resume", str(out), "--steps", "3"]) == 2
    assert "changed since this run was trained" in capsys.readouterr().err


def test_rgb_shapes_at_64px_train_picture_and_evaluate(tmp_path, capsys):
    folder = write_shapes_folder(tmp_path / "shapes", 48, size=64)
    out = tmp_path / "run"
    assert main(["train", "--data", str(folder.root), "--steps", "4", "--out", str(out), *_sets(TINY_DCGAN),
                 "--set", 'data.cache=""']) == 0
    assert "resolution 64" in capsys.readouterr().err
    grid = Image.open(out / "samples" / "step_000004.png")
    assert grid.mode == "RGB"
    assert main(["eval", str(out), "-n", "48"]) == 0  # no Inception here: the defaults fall back to SWD
    table = capsys.readouterr().out
    assert "swd" in table and "measured what needs none" in table


def test_bad_image_inputs_are_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.json").write_text("hello")
    cases = {
        str(tmp_path / "empty"): "no images",
        str(tmp_path / "notes.json"): "is a file ganforge cannot read",
        str(tmp_path / "nope"): "is not a dataset name and no such file or folder exists",
    }
    for path, words in cases.items():
        assert main(["train", "--data", path, "--steps", "1", "--out", str(tmp_path / "r")]) == 2
        err = capsys.readouterr().err
        assert words in err and err.count("\n") == 1 and "Traceback" not in err
    assert main(["train", "--data", str(tmp_path / "empty"), "--set", "data.channels=2"]) == 2
    assert "data.channels: '2' is not one of auto, 1, 3, 4" in capsys.readouterr().err


def test_python_data_in_memory_is_saved_with_the_run_and_evaluated_against(tmp_path):
    """train(cfg, data=tensor): the run keeps the data (RUN/data.npz) and eval measures against it, not data.name."""
    from ganforge import train

    x = torch.rand(64, 1, 16, 16) * 2 - 1  # not digits: an eval against mnist-5k would fail on the shape
    cfg = config.apply_overrides(config.Config(), [*TINY_DCGAN, "train.steps=2", f'train.out="{tmp_path / "r"}"'])
    run = train.train(cfg, data=x)
    assert run.data.shape == (1, 16, 16) and (run.out / "data.npz").exists()
    assert run.cfg.data.path == str((run.out / "data.npz").resolve())
    assert main(["eval", str(run.out), "-n", "32", "--metrics", "swd"]) == 0
    small = ["model.z_dim=4", "model.g.hidden=[8]", "model.d.hidden=[8]", "train.batch_size=16", "train.steps=2",
             'train.progress="none"', "train.tensorboard=false", f'train.out="{tmp_path / "v"}"']
    vectors = train.train(config.apply_overrides(config.Config(), small), data=torch.randn(200, 3))
    assert vectors.data.family.name == "points" and vectors.data.shape == (3,)
