"""evaluate(): end to end on tiny trained runs, sample files, provenance, determinism, user errors."""

import argparse
import json

import numpy as np
import pytest
import torch

import ganforge
from ganforge import config, evaluate, metrics
from ganforge.config import ConfigError
from ganforge.data import IMAGES, mnist, toy
from ganforge.train import train
from tests.conftest import TINY_MNIST

TINY = ["data.name=\"gaussian-1d\"", "data.n=2000", "model.z_dim=4", "model.g.hidden=[8]",
        "model.d.hidden=[8]", "train.steps=200", "train.batch_size=32", "train.log_every=100",
        "train.sample_every=0", "train.ckpt_every=0", "train.progress=\"none\"", "train.hist_samples=100"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    cfg = config.apply_overrides(config.Config(), TINY + [f"train.out=\"{out}\""])
    train(cfg)
    return out


def test_end_to_end_on_a_trained_run(run_dir):
    res = evaluate.evaluate(run_dir, n=2000)
    m, p = res["metrics"], res["provenance"]
    assert set(m) == {"w1", "ks", "mmd", "mean_error", "std_error", "w1_normal"}
    fake = ganforge.load(run_dir).sample(2000, seed=0)
    assert m["w1_normal"] == metrics.w1_normal(fake, 5.0, 1.0)  # exactly the documented computation
    assert p["step"] == 200 and p["ema"] is False and p["n_generated"] == 2000 and p["n_real"] == 2000
    assert p["dataset"]["name"] == "gaussian-1d" and p["dataset"]["size"] == 2000
    assert p["dataset"]["sha256"] == toy.gaussian_1d(2000, seed=0).sha256()
    assert p["metrics"]["w1"]["implementation"] == "ganforge.metrics.lowdim.w1"
    assert p["ganforge_version"] == ganforge.__version__ and p["torch_version"] == torch.__version__
    written = run_dir / "eval" / "step_000200.json"
    assert res["path"] == str(written)
    assert json.loads(written.read_text()) == {k: v for k, v in res.items() if k != "path"}


def test_same_inputs_and_seed_give_identical_numbers(run_dir, tmp_path):
    a = evaluate.evaluate(run_dir, n=1000, seed=3, out=tmp_path / "a.json")
    b = evaluate.evaluate(run_dir, n=1000, seed=3, out=tmp_path / "b.json")
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    c = evaluate.evaluate(run_dir, n=1000, seed=4, out=tmp_path / "c.json")
    assert a["metrics"] == b["metrics"] != c["metrics"]


def test_step_must_be_the_checkpoint_step(run_dir):
    assert evaluate.evaluate(run_dir, n=100, step=200, out=None)["provenance"]["step"] == 200
    with pytest.raises(ConfigError, match="--step 100: the run's checkpoint is at step 200 and only the lat"):
        evaluate.evaluate(run_dir, n=100, step=100)


def test_metric_names_are_checked(run_dir, tmp_path):
    with pytest.raises(ConfigError, match="--metrics: unknown metric 'fdi'"):
        evaluate.evaluate(run_dir, metrics=["fdi"], n=100)
    with pytest.raises(ConfigError, match="--metrics: fid measures images, not points"):
        evaluate.evaluate(run_dir, metrics=["fid"], n=100)
    with pytest.raises(ConfigError, match=r"--metrics: modes needs a dataset with known modes \(ring-8, grid-25\)"):
        evaluate.evaluate(run_dir, metrics=["modes"], n=100)
    np.save(tmp_path / "s.npy", toy.spirals(200).x.numpy())
    msg = r"--metrics: modes needs a dataset with known modes \(ring-8, grid-25\)"
    with pytest.raises(ConfigError, match=msg):
        evaluate.evaluate(samples=tmp_path / "s.npy", real="spirals", metrics=["modes"])


def test_inputs_are_checked(tmp_path):
    with pytest.raises(ConfigError, match="give a run folder or --samples FILE.npy"):
        evaluate.evaluate()
    np.save(tmp_path / "s.npy", np.zeros((10, 2), np.float32))
    with pytest.raises(ConfigError, match="--real DATASET|FILE.npy is needed"):
        evaluate.evaluate(samples=tmp_path / "s.npy")
    with pytest.raises(ConfigError, match="--real: unknown dataset 'ring8'"):
        evaluate.evaluate(samples=tmp_path / "s.npy", real="ring8")
    with pytest.raises(ConfigError, match=r"generated samples are shaped \(2,\), real ones \(1,\)"):
        evaluate.evaluate(samples=tmp_path / "s.npy", real="gaussian-1d")


def test_ring_samples_file_gets_mode_stats(tmp_path):
    ring = toy.ring_8(n=600, seed=5)
    half = ring.x[ring.y < 4]  # samples at 4 of the 8 modes only
    np.save(tmp_path / "half.npy", half.numpy())
    res = evaluate.evaluate(samples=tmp_path / "half.npy", real="ring-8", n=500)
    m = res["metrics"]
    assert set(m) == {"modes_covered", "modes_total", "high_quality", "mode_kl", "mode_counts", "mmd"}
    own = ring.modes[ring.y[ring.y < 4]]  # each sample's own centre; the others are far away
    within = ((half.double() - own).norm(dim=1) <= 3 * ring.mode_std).double()  # 2D: about 1 - exp(-4.5)
    assert m["modes_covered"] == 4 and m["modes_total"] == 8
    assert m["high_quality"] == pytest.approx(within.mean().item(), abs=1e-12)
    p = torch.bincount(ring.y[ring.y < 4], weights=within).double() / within.sum()
    assert m["mode_kl"] == pytest.approx((p * (8 * p).log()).sum().item(), rel=1e-9)
    assert "path" not in res  # no run folder and no --out: nothing written


def test_digit_images_get_image_metrics_with_provenance(tmp_path):
    ds = mnist.mnist_5k()
    np.save(tmp_path / "threes.npy", ds.x[ds.y == 3][:300].numpy())
    np.save(tmp_path / "mixed.npy", ds.x[1::17][:294].numpy())
    res = evaluate.evaluate(samples=tmp_path / "threes.npy", real="mnist-5k", n=300, out=tmp_path / "e.json")
    m, p = res["metrics"], res["provenance"]
    assert set(m) >= {"fid", "kid", "kid_std", "precision", "recall", "density", "coverage", "classes"}
    assert m["classes"] == 1 and m["class_kl"] == pytest.approx(np.log(10), abs=0.05)
    sha = metrics.features.DIGIT_SHA256
    assert p["features"] == {"name": "digit-cnn", "sha256": sha, "conversion": "none"}
    assert p["metrics"]["kid"]["subsets"] == 100 and p["n_real"] == 300
    mixed = evaluate.evaluate(samples=tmp_path / "mixed.npy", real="mnist-5k", n=300)["metrics"]
    assert mixed["classes"] == 10 and mixed["fid"] < m["fid"] / 5 and mixed["recall"] > m["recall"]


def test_cli_subcommand_prints_table(run_dir, capsys):
    parser = argparse.ArgumentParser(prog="ganforge")
    evaluate.add_eval_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["eval", str(run_dir), "--metrics", "w1,ks", "-n", "500", "--no-ema"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "step 200" in out and "500 generated vs 500 real from gaussian-1d" in out
    w1 = evaluate.evaluate(run_dir, metrics=["w1"], n=500)["metrics"]["w1"]
    assert f"w1  {w1:.6g}" in out and "\nks  " in out


@pytest.fixture(scope="module")
def cond_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cond")
    train(config.apply_overrides(config.Config(), TINY_MNIST + ['model.conditional="acgan"', "train.steps=10",
                                                                f'train.out="{out}"']))
    return out


def test_conditional_run_gets_cond_acc_by_default(cond_dir, tmp_path):
    res = evaluate.evaluate(cond_dir, n=300, seed=2, out=tmp_path / "e.json")
    m, p = res["metrics"], res["provenance"]
    assert {"fid", "classes", "cond_acc", "cond_acc_min", "cond_acc_per_class"} <= set(m)
    sampler = ganforge.load(cond_dir)
    x = sampler.sample(300, seed=2)  # the documented default labels: 0..9 cycled
    pred = metrics.load_digit_classifier().logits(x).argmax(1)  # (300,)
    hand = [(pred[k::10] == k).double().mean().item() for k in range(10)]  # 30 samples asked as each digit
    assert m["cond_acc_per_class"] == pytest.approx(hand, abs=1e-15)
    assert m["cond_acc"] == pytest.approx(sum(hand) / 10, abs=1e-15) and m["cond_acc_min"] == min(hand)
    assert p["sampling"] == "ganforge.load(run, ema=True).sample(300, seed=2, y=arange(300) % 10)"
    assert p["metrics"]["cond_acc"]["implementation"] == "ganforge.metrics.images.conditional_accuracy"
    assert "cond_acc  " in evaluate.format_table(res) and "cond_acc_per_class" not in evaluate.format_table(res)


class DigitSampler:
    """Stands in for ganforge.load(RUN): asked for digit k, returns a real mnist-5k digit of class k + shift, or
    with probability `noise` one of a random class."""

    def __init__(self, shift: int = 0, noise: float = 0.0, num_classes: int = 10, conditional: str = "acgan"):
        sets = ['data.name="mnist-5k"', f'model.conditional="{conditional}"']
        self.cfg, self.step, self.ema = config.apply_overrides(config.Config(), sets), 7, True
        self.family = IMAGES
        self.shift, self.noise, self.num_classes = shift, noise, num_classes
        self.x = mnist.mnist_5k().x  # (5000, 1, 28, 28), rows sorted by label, 500 per class

    def sample(self, n, seed=None, y=None):
        gen = torch.Generator().manual_seed(seed)
        y = torch.arange(n) % self.num_classes if y is None else y
        drawn = torch.where(torch.rand(n, generator=gen) < self.noise, torch.randint(0, 10, (n,), generator=gen),
                            (y + self.shift) % 10)
        return self.x[drawn * 500 + torch.randint(0, 500, (n,), generator=gen)]  # (n, 1, 28, 28)


def test_cond_acc_of_a_generator_known_to_obey_or_not(monkeypatch, tmp_path):
    for shift, expect in ((0, 1.0), (1, 0.0)):
        monkeypatch.setattr(ganforge, "load", lambda run, ema=True, s=shift: DigitSampler(s))
        m = evaluate.evaluate(tmp_path, metrics=["cond_acc"], n=1000, out=None)["metrics"]
        assert m["cond_acc"] == pytest.approx(expect, abs=0.01)  # the classifier is 99% right on real digits
        assert m["cond_acc_per_class"] == pytest.approx([expect] * 10, abs=0.05)


def test_cond_acc_is_deterministic_given_the_seed(monkeypatch, cond_dir, tmp_path):
    a, b = (evaluate.evaluate(cond_dir, metrics=["cond_acc"], n=200, seed=5, out=tmp_path / f"{w}.json")
            for w in "ab")
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    sampler = DigitSampler(noise=0.5)  # reads as the requested digit about 55% of the time, varying with the seed
    monkeypatch.setattr(ganforge, "load", lambda run, ema=True: sampler)
    a, b, c = (evaluate.evaluate(tmp_path, metrics=["cond_acc"], n=500, seed=s, out=None)["metrics"]
               for s in (5, 5, 6))
    assert a == b and a["cond_acc_per_class"] != c["cond_acc_per_class"]
    pred = metrics.load_digit_classifier().logits(sampler.sample(500, seed=5)).argmax(1)  # (500,)
    hand = [(pred[k::10] == k).double().mean().item() for k in range(10)]
    assert a["cond_acc_per_class"] == pytest.approx(hand, abs=1e-15) and 0.4 < a["cond_acc"] < 0.7


def test_cond_acc_user_errors(monkeypatch, cond_dir, run_dir, tmp_path):
    with pytest.raises(ConfigError, match="--metrics: cond_acc measures images, not points"):
        evaluate.evaluate(run_dir, metrics=["cond_acc"], n=100)
    np.save(tmp_path / "s.npy", mnist.mnist_5k().x[:20].numpy())
    with pytest.raises(ConfigError, match="--metrics: cond_acc samples the run with labels itself; it cannot"):
        evaluate.evaluate(cond_dir, samples=tmp_path / "s.npy", metrics=["cond_acc"], n=20)
    with pytest.raises(ConfigError, match=r"--metrics: cond_acc needs at least one sample per class \(-n >= 10\)"):
        evaluate.evaluate(cond_dir, metrics=["cond_acc"], n=5)
    monkeypatch.setattr(ganforge, "load", lambda run, ema=True: DigitSampler(conditional="none"))
    msg = r"^--metrics: cond_acc needs a conditional run \(model.conditional != 'none'\)$"
    with pytest.raises(ConfigError, match=msg):
        evaluate.evaluate(tmp_path, metrics=["cond_acc"], n=100)
    assert "cond_acc" not in evaluate.evaluate(tmp_path, n=100, out=None)["metrics"]  # nor by default
    monkeypatch.setattr(ganforge, "load", lambda run, ema=True: DigitSampler(num_classes=5))
    with pytest.raises(ConfigError, match="--metrics: cond_acc needs a run conditioned on the digit classifier's 10 "
                                          "classes, not 5"):
        evaluate.evaluate(tmp_path, metrics=["cond_acc"], n=100)


def test_a_write_cut_short_leaves_the_old_result(run_dir, tmp_path, monkeypatch):
    """`ganforge eval` writes its JSON beside the target and renames it: a failure half way keeps the old file."""
    from ganforge import fsio

    out = tmp_path / "eval.json"
    out.write_text('{"old": true}\n')
    real_replace = fsio.os.replace

    def cut(src, dst):  # the new file is complete on disk, then the rename fails (a kill, a full disk)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fsio.os, "replace", cut)
    with pytest.raises(fsio.WriteError, match="No space left on device"):
        evaluate.evaluate(run_dir, n=50, out=out)
    monkeypatch.setattr(fsio.os, "replace", real_replace)
    assert out.read_text() == '{"old": true}\n' and [p.name for p in tmp_path.iterdir()] == ["eval.json"]
