"""End to end on the user's own text: train, sample (--temperature, --novel), eval, resume, export, the Python
API and every bad input as one line, through the command line as a user would.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import ganforge
from ganforge import config
from ganforge.cli import main
from tests.cutruns import assert_resume_is_bit_exact

TINY_TEXT = ["model.z_dim=16", "model.g.channels=16", "model.g.blocks=1", "model.d.channels=16",
             "model.d.blocks=1", "train.batch_size=32", "train.d_steps=1", "train.log_every=5",
             "train.sample_every=10", "train.ckpt_every=10", 'train.progress="none"', "train.tensorboard=false",
             'train.lr_decay="none"']  # a run cut at --steps 6 and resumed to 12 decays as one of 12 steps only so
WORDS = ["anna", "bob", "carla", "dora", "emil", "fritz", "greta", "hugo", "ida", "jonas", "karl", "lena", "mia",
         "nora", "otto", "paul", "rosa", "sven", "tom", "ute", "vera", "willi", "zoe", "ben"]


def _sets(items: list[str]) -> list[str]:
    return [a for item in items for a in ("--set", item)]


def name_lines(n: int = 400, seed: int = 0) -> list[str]:
    """Short made-up names from two syllables, plus one line too long to keep."""
    rng = np.random.default_rng(seed)
    lines = [WORDS[i][:3] + WORDS[j][-2:] for i, j in rng.integers(0, len(WORDS), (n, 2))]
    return lines + ["x" * 40]


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("text")
    path = folder / "names.txt"
    path.write_text("\n".join(name_lines()) + "\n\n", encoding="utf-8")
    out = folder / "run"
    assert main(["train", "--data", str(path), "--preset", "text", "--steps", "20", "--out", str(out),
                 *_sets(TINY_TEXT + ["train.mle_steps=10"])]) == 0  # half by maximum likelihood, half the GAN
    return path, out


def test_train_sample_eval_through_the_cli(text_run, tmp_path, capsys):
    path, out = text_run
    s = ganforge.load(out)
    assert s.family.name == "text" and s.data_shape[0] == 5  # the 99th percentile of lengths; the 40-x line dropped
    assert (out / "samples" / "step_000020.png").is_file()
    shown = (out / "samples" / "step_000020.txt").read_text().splitlines()
    assert len(shown) == 64

    alphabet = set("".join(name_lines()[:-1]))
    for argv in ([], ["--temperature", "0.7"], ["--temperature", "0"]):
        target = tmp_path / "new.txt"
        assert main(["sample", str(out), "-n", "100", "--out", str(target), *argv]) == 0
        lines = target.read_text(encoding="utf-8").split("\n")[:-1]
        assert len(lines) == 100 and all(len(line) <= 5 and set(line) <= alphabet for line in lines)
    assert main(["sample", str(out), "-n", "300", "--novel", "--out", str(tmp_path / "novel.txt")]) == 0
    err = capsys.readouterr().err
    kept = (tmp_path / "novel.txt").read_text().split("\n")[:-1]
    assert f"--novel: dropped {300 - len(kept)} of 300 samples" in err
    train_lines = set(_train_lines(out))
    assert not set(kept) & train_lines

    assert main(["eval", str(out), "-n", "200"]) == 0
    printed = capsys.readouterr().out
    for key in ("copies", "novel", "unique", "novel_real", "jsd_mean", "len_w1", "fwd_nll", "rev_nll", "real_nll"):
        assert f"\n{key} " in printed
    result = json.loads((out / "eval" / "step_000020.json").read_text())
    assert result["metrics"]["copies"] + result["metrics"]["novel"] == pytest.approx(1.0)


def _train_lines(out) -> list[str]:
    from ganforge.data import load_dataset

    s = ganforge.load(out)
    return load_dataset(s.cfg.data, s.cfg.train.seed, s.family_state).extra["train_lines"]


def test_python_api_with_lines(tmp_path):
    cfg = config.apply_overrides(config.load_preset("text"), TINY_TEXT + ["train.steps=6", "train.mle_steps=3",
                                                                          f'train.out="{tmp_path / "run"}"'])
    run = ganforge.train(cfg, data=name_lines(200, seed=2)[:-1])
    assert run.step == 6 and (tmp_path / "run" / "data.txt").is_file()
    lines = ganforge.load(tmp_path / "run").sample(20, seed=1, temperature=0.9)
    assert isinstance(lines, list) and all(isinstance(line, str) for line in lines) and len(lines) == 20
    assert lines == ganforge.load(tmp_path / "run").sample(20, seed=1, temperature=0.9)
    s = ganforge.load(tmp_path / "run")
    kept = s.sample(20, seed=1, temperature=0.9, novel=True)  # the same draws, training lines dropped
    train = set(_train_lines(tmp_path / "run"))
    assert kept == [line for line in lines if line not in train] and s.dropped == 20 - len(kept)


def test_conv_gan_resumes_bit_exact_and_exports_samples_alike(text_run, tmp_path):
    path, _ = text_run
    cut = assert_resume_is_bit_exact(["train", "--data", str(path), "--preset", "text-cnn", *_sets(TINY_TEXT)], 12,
                                     tmp_path)
    assert main(["export", str(cut), "--out", str(tmp_path / "g.safetensors")]) == 0
    assert (ganforge.load(tmp_path / "g.safetensors").sample(30, seed=2, temperature=1.0)
            == ganforge.load(cut).sample(30, seed=2, temperature=1.0))


def test_gumbel_head_trains(tmp_path):
    cfg = config.apply_overrides(config.load_preset("text-cnn"), TINY_TEXT + [
        "train.steps=4", 'model.text_head="gumbel"', f'train.out="{tmp_path / "run"}"'])
    run = ganforge.train(cfg, data=name_lines(100)[:-1])
    assert run.step == 4 and len(ganforge.load(tmp_path / "run").sample(5, seed=0)) == 5


@pytest.mark.parametrize("content, extra, message", [
    (b"", [], "the file is empty"),
    (b"abc\x00def\n", [], "binary file (NUL byte at offset 3)"),
    (b"abcdefghij\nklmnopqrst\n", ["--set", "data.max_len=3"], "every line is longer than max_len=3 tokens"),
    ("".join(chr(0x4E00 + i) for i in range(10_001)).encode(), [], "10,001 distinct characters"),
])
def test_bad_text_is_one_line(tmp_path, capsys, content, extra, message):
    path = tmp_path / "lines.txt"
    path.write_bytes(content)
    assert main(["train", "--data", str(path), "--preset", "text", "--steps", "2", "--out", str(tmp_path / "r"),
                 *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and not (tmp_path / "r" / "checkpoint.safetensors").exists()


def test_text_options_are_checked(text_run, tmp_path, capsys):
    out = str(text_run[1])
    assert main(["sample", out, "-n", "5", "--temperature", "-1", "--out", str(tmp_path / "x.txt")]) == 2
    assert "--temperature must be at least 0" in capsys.readouterr().err
    assert main(["sample", out, "-n", "5", "--out", str(tmp_path / "x.csv")]) == 2
    assert "text samples are written as .txt, got 'x.csv'" in capsys.readouterr().err
    assert main(["sample", out, "-n", "5", "--where", "a=b", "--out", str(tmp_path / "x.txt")]) == 2
    assert "--where is for tables" in capsys.readouterr().err


def test_report_shows_the_lines(text_run, tmp_path):
    out = text_run[1]
    assert main(["report", str(out), "--out", str(tmp_path / "r.html")]) == 0
    page = (tmp_path / "r.html").read_text()
    first = (out / "samples" / "step_000020.txt").read_text().splitlines()[0]
    assert "Final samples as text (step 20)" in page and f"<pre class='lines'>{first}\n" in page


def test_a_csv_column_of_words(tmp_path):
    """data.column reads one column of a CSV; data.tokens = "words" learns whole words (a phrase per line)."""
    rng = np.random.default_rng(0)
    phrases = [f"{WORDS[i]} {WORDS[j]}" for i, j in rng.integers(0, 6, (200, 2))]
    path = tmp_path / "phrases.csv"
    path.write_text("id,phrase\n" + "".join(f"{k},{p}\n" for k, p in enumerate(phrases)), encoding="utf-8")
    out = tmp_path / "run"
    assert main(["train", "--data", str(path), "--preset", "text", "--steps", "4", "--out", str(out),
                 *_sets(TINY_TEXT + ['data.column="phrase"', 'data.tokens="words"'])]) == 0
    s = ganforge.load(out)
    assert s.data_shape == (2, 7)  # two words per line; six words plus the end token
    words = {w for line in s.sample(200, seed=0, temperature=1.0) for w in line.split(" ") if line}
    assert words <= set(WORDS[:6])


TINY_RNN = TINY_TEXT + ["train.mle_steps=8", "loss.mle_weight=0.5"]  # the text preset's LSTM G


def test_lstm_generator_resumes_bit_exact_across_its_likelihood_phase(text_run, tmp_path):
    """Cut at step 6, inside train.mle_steps = 8, and resumed to 12: through the switch to the GAN, as straight."""
    path, _ = text_run
    cut = assert_resume_is_bit_exact(["train", "--data", str(path), "--preset", "text", *_sets(TINY_RNN)], 12,
                                     tmp_path)
    records = [json.loads(line) for line in (cut / "metrics.jsonl").read_text().splitlines()]
    logged = [r for r in records if "loss_g" in r]
    assert [r["step"] for r in logged] == [5, 6, 10, 12] and logged[1]["mle"] and "mle" not in logged[2]
    assert logged[1]["loss_d"] == 0.0 and logged[2]["loss_d"] != 0.0  # D waits while G learns the lines
    s = ganforge.load(cut)
    assert s.sample(40, seed=3) == s.sample(40, seed=3)  # a function of the noise
    assert s.sample(40, seed=3, temperature=0) != s.sample(40, seed=3)
    assert main(["export", str(cut), "--out", str(tmp_path / "g.safetensors")]) == 0
    assert ganforge.load(tmp_path / "g.safetensors").sample(40, seed=3, temperature=0.7) == s.sample(
        40, seed=3, temperature=0.7)


def test_lstm_generator_learns_the_lines_by_maximum_likelihood(tmp_path, capsys):
    """120 steps of maximum likelihood alone on the made-up names: G's NLL falls from ~log V to under half of
    it, and most samples are lines of the data's kind (three letters of one word, two of another)."""
    cfg = config.apply_overrides(config.load_preset("text"), TINY_RNN + [
        "model.g.channels=32", "train.steps=120", "train.mle_steps=120", "train.log_every=10",
        "g_optim.lr=0.01", "model.ema=0", 'train.progress="lines"', f'train.out="{tmp_path / "run"}"'])
    lines = name_lines(400)[:-1]
    ganforge.train(cfg, data=lines)
    assert "train.mle_steps = 120 covers all 120 steps: G learns by maximum likelihood alone and D never trains" in (
        capsys.readouterr().err)
    nll = [json.loads(line)["loss_g"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
           if '"loss_g"' in line]
    vocab = len(set("".join(lines))) + 1
    assert nll[0] > 0.6 * np.log(vocab) and nll[-1] < 0.5 * np.log(vocab)
    heads, tails = {w[:3] for w in WORDS}, {w[-2:] for w in WORDS}
    made = ganforge.load(tmp_path / "run").sample(300, seed=0, temperature=0.8)
    assert sum(len(m) == 5 and m[:3] in heads and m[3:] in tails for m in made) / len(made) > 0.6


@pytest.mark.parametrize("sets, message", [
    (["model.g.arch=textcnn", "train.mle_steps=5"], "train.mle_steps: 5 has no effect with model.g.arch = 'textcnn'"),
    (["model.g.arch=textcnn", "loss.mle_weight=2"], "loss.mle_weight: 2.0 has no effect with model.g.arch = 'textcnn'"),
    (["model.g.arch=textcnn"], "train.mle_steps = 20000, loss.mle_weight = 1.0: maximum likelihood needs "
                               "model.g.arch = 'textrnn'; set both to 0 or use --preset text-cnn"),
    (["model.g.arch=textrnn", "model.g.blocks=0"], "model.g.blocks: the textrnn generator's LSTM layers, at least 1"),
    (["model.g.arch=textrnn", "model.g.blocks=1", "model.z_dim=4"],
     "model.z_dim: the textrnn generator draws each of 5 tokens (max_len) from one noise coordinate"),
    (["model.d.arch=textrnn"], "model.d.arch: 'textrnn' is a generator; text is read by textcnn"),
])
def test_lstm_generator_options_are_checked(text_run, tmp_path, capsys, sets, message):
    path = str(text_run[0])
    assert main(["train", "--data", path, "--preset", "text", "--steps", "2", "--out", str(tmp_path / "r"),
                 *_sets(TINY_TEXT + sets)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_max_epochs_caps_a_run_on_a_small_file(text_run, tmp_path, capsys):
    """320 training lines at batch 32 are 10 steps a pass: train.max_epochs = 2 cuts 100 steps to 20, and the
    likelihood phase from 50 to 10; the run says so."""
    path = str(text_run[0])
    out = tmp_path / "run"
    assert main(["train", "--data", path, "--preset", "text", "--steps", "100", "--out", str(out),
                 *_sets(TINY_TEXT + ["train.max_epochs=2", "train.mle_steps=50", 'train.progress="lines"',
                                     "train.log_every=10"])]) == 0
    assert ("train.max_epochs = 2 caps this run at 20 steps (2 passes over 320 examples at batch 32; train.steps "
            "asked 100); the first 10 by maximum likelihood") in capsys.readouterr().err
    logged = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if '"loss_g"' in line]
    assert [(r["step"], r.get("mle", False)) for r in logged] == [(10, True), (20, False)]
