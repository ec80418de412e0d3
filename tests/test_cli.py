import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import ganforge
from ganforge.cli import main
from tests.conftest import TINY_1D, TINY_MNIST


def _sets(items):
    """--set flags for a tiny config, leaving train.steps to the test's own --steps."""
    return [a for item in items if not item.startswith("train.steps=") for a in ("--set", item)]


def test_train_sample_export_round_trip(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["train", *_sets(TINY_MNIST), "--out", str(out), "--steps", "20", "--seed", "3"]) == 0
    printed = capsys.readouterr().out
    assert f"checkpoint:  {out / 'checkpoint.safetensors'}" in printed
    assert f"samples:     {out / 'samples' / 'step_000020.png'}" in printed

    assert main(["sample", str(out), "-n", "10", "--out", str(tmp_path / "s.npy")]) == 0
    x = np.load(tmp_path / "s.npy")
    assert x.shape == (10, 1, 28, 28) and x.min() >= -1 and x.max() <= 1
    assert main(["sample", str(out), "-n", "16", "--out", str(tmp_path / "s.png")]) == 0
    assert Image.open(tmp_path / "s.png").size == (2 * (4 * 30 + 2), 2 * (4 * 30 + 2))

    assert main(["export", str(out), "--out", str(tmp_path / "G.safetensors")]) == 0
    exported = ganforge.load(tmp_path / "G.safetensors")
    np.testing.assert_array_equal(exported.sample(5, seed=1).numpy(), ganforge.load(out).sample(5, seed=1).numpy())
    assert exported.cfg.train.seed == 3 and exported.step == 20


def test_toml_file_then_flags_then_set(tmp_path):
    cfg_file = tmp_path / "my.toml"
    cfg_file.write_text('[train]\nsteps = 5\nbatch_size = 16\n[model]\nz_dim = 3\n')
    out = tmp_path / "r"
    assert main(["train", str(cfg_file), "--preset", "gaussian-1d-reference", *_sets(TINY_1D[1:]), "--out", str(out),
                 "--steps", "12", "--set", "model.z_dim=5"]) == 0
    saved = ganforge.load_toml(out / "config.toml")
    assert (saved.train.steps, saved.train.batch_size, saved.model.z_dim, saved.preset) == (12, 32, 5,
                                                                                           "gaussian-1d-reference")


@pytest.mark.parametrize("argv, message", [
    (["train", "--set", "train.batchsize=3"], "ganforge train: error: unknown config key 'train.batchsize' "
                                              "(did you mean 'batch_size'?)"),
    (["train", "--preset", "nope"], "ganforge train: error: unknown preset 'nope'"),
    (["train", "--data", "mnits"], "ganforge train: error: --data: 'mnits' is not a dataset name and no such file or "
                                   "folder exists (did you mean the dataset 'mnist'?); --data takes a dataset name "
                                   "(gaussian-1d, ring-8, grid-25, spirals, mnist, mnist-5k, diamonds, names) or a "
                                   "path: a folder or .zip of images (PNG, JPEG, WebP, BMP, GIF), a .npy/.npz array, a "
                                   "table (.csv, .tsv, .parquet) or a text file (.txt, one sample per line)"),
    (["train", "--data", "./nonexistent"], "ganforge train: error: --data: './nonexistent' is not a dataset name and "
                                           "no such file or folder exists; --data takes a dataset name"),
    (["train", "missing.toml"], "ganforge train: error: config file not found: missing.toml"),
    (["sample", "nowhere", "--out", "x.npy"],
     "ganforge sample: error: no checkpoint at nowhere (expected a run folder or a .safetensors file)"),
    ])
def test_user_errors_are_one_line(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1 and "Traceback" not in err


def test_refuses_to_overwrite_a_run(tmp_path, capsys):
    out = tmp_path / "r"
    args = ["train", *_sets(TINY_1D), "--out", str(out), "--steps", "5"]
    assert main(args) == 0
    before = (out / "checkpoint.safetensors").read_bytes()
    assert main(args) == 2
    assert f"{out} already holds a run: continue it with --resume {out}" in capsys.readouterr().err
    assert (out / "checkpoint.safetensors").read_bytes() == before


def test_resume_from_cli(tmp_path):
    out = tmp_path / "r"
    assert main(["train", *_sets(TINY_1D), "--out", str(out), "--steps", "20"]) == 0
    assert main(["train", "--resume", str(out), "--steps", "30"]) == 0
    assert ganforge.load(out).step == 30


def test_gaussian_1d_learns_mean_and_std(tmp_path):
    """End to end: the 1D GAN learns N(5, 1) within a tolerance (mean and std)."""
    out = tmp_path / "g"
    assert main(["train", "--preset", "gaussian-1d", "--out", str(out), "--progress", "none",
                 "--set", "train.sample_every=0", "--set", "train.ckpt_every=0"]) == 0
    x = ganforge.load(out).sample(20000, seed=0).numpy().ravel()
    assert abs(x.mean() - 5.0) < 0.05, x.mean()
    assert abs(x.std() - 1.0) < 0.05, x.std()


def test_mnist_5k_cli_end_to_end(tmp_path):
    """A few hundred real steps on mnist-5k through the installed command, checking the run folder."""
    out = tmp_path / "m"
    proc = subprocess.run([sys.executable, "-m", "ganforge.cli", "train", "--preset", "mnist-mlp-reference",
                           "--data", "mnist-5k", "--steps", "300", "--out", str(out),
                           "--set", "train.sample_every=100", "--set", "train.log_every=50"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("step ")]
    assert len(lines) == 6 and "\r" not in proc.stderr  # not a terminal: plain lines, no bar
    assert sorted(p.name for p in (out / "samples").iterdir()) == [
        "step_000100.png", "step_000200.png", "step_000300.png"]
    img = Image.open(out / "samples" / "step_000300.png")
    assert img.size == (2 * (8 * 30 + 2),) * 2  # 8x8 grid of 28px digits, 2px padding, drawn at 2x
    recs = [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recs if "loss_d" in r][-1] == 300 and ganforge.load(out).step == 300


def test_conditional_sample_label_and_class_grid(tmp_path, capsys):
    out = tmp_path / "c"
    args = ["train", *_sets(TINY_MNIST), "--out", str(out), "--steps", "5", "--set", 'model.conditional="embed"']
    assert main(args) == 0
    assert main(["sample", str(out), "-n", "7", "--label", "3", "--out", str(tmp_path / "s.npy")]) == 0
    assert np.load(tmp_path / "s.npy").shape == (7, 1, 28, 28)
    assert np.load(tmp_path / "s_labels.npy").tolist() == [3] * 7
    assert main(["sample", str(out), "-n", "30", "--out", str(tmp_path / "g.png")]) == 0
    assert Image.open(tmp_path / "g.png").size == (2 * (3 * 30 + 2), 2 * (10 * 30 + 2))  # 10 rows of 3
    assert main(["sample", str(out), "-n", "5", "--out", str(tmp_path / "five.npy")]) == 0  # n not a multiple of 10
    assert np.load(tmp_path / "five_labels.npy").tolist() == [0, 1, 2, 3, 4]
    assert main(["sample", str(out), "--label", "10", "--out", str(tmp_path / "x.npy")]) == 2
    assert "ganforge sample: error: --label must be a class in 0..9, got 10" in capsys.readouterr().err


def test_label_on_unconditional_run_is_an_error(tmp_path, capsys):
    out = tmp_path / "u"
    assert main(["train", *_sets(TINY_1D), "--out", str(out), "--steps", "5"]) == 0
    assert main(["sample", str(out), "--label", "1", "--out", str(tmp_path / "x.npy")]) == 2
    assert "is not a conditional run (model.conditional = 'none')" in capsys.readouterr().err
    assert main(["sample", str(out), "--out", str(tmp_path / "x.jpg")]) == 2
    assert capsys.readouterr().err == ("ganforge sample: error: --out: points samples are written as .npy or .csv "
                                       "or .png, got 'x.jpg'\n")
    assert main(["sample", str(out), "-n", "3", "--out", str(tmp_path / "x.csv")]) == 0
    lines = (tmp_path / "x.csv").read_text().split()
    assert lines[0] == "x0" and len(lines) == 4


def test_tensorboard_flag(tmp_path):
    for flag, expected in (("--no-tensorboard", False), ("--tensorboard", True)):
        out = tmp_path / flag
        assert main(["train", *_sets(TINY_1D), "--out", str(out), "--steps", "3", flag]) == 0
        assert ganforge.load_toml(out / "config.toml").train.tensorboard is expected
        assert (out / "tensorboard").exists() is expected
