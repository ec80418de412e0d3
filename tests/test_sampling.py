"""Sampling a trained G: per-seed noise, the truncation trick, seed lists, file names, labels by class name."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

import ganforge
from ganforge import config, noise, train
from ganforge.cli import main
from ganforge.data.images_family import to_uint8
from ganforge.outputs import NullOutput
from ganforge.sampling import generate
from tests.conftest import TINY_1D, TINY_MNIST

NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def _saved(tmp, items, name, steps=3, class_names=None):
    """A tiny run trained `steps` G updates and checkpointed; its folder."""
    cfg = config.apply_overrides(config.Config(), items + [f"train.steps={steps}", f'train.out="{tmp / name}"'])
    run = train.build(cfg)
    if class_names is not None:
        run.data.class_names = class_names
    train.train(run=run, output=NullOutput())
    train.save_run(run)
    return run.out


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("runs")
    return {"1d": _saved(tmp, TINY_1D, "1d"), "mnist": _saved(tmp, TINY_MNIST, "mnist"),
            "cond": _saved(tmp, TINY_MNIST + ['model.conditional="embed"'], "cond", class_names=NAMES)}


# ---- noise.py


def test_seed_noise_is_stylegans_draw():
    expected = torch.randn(1, 7, generator=torch.Generator().manual_seed(42))
    assert torch.equal(noise.seed_noise(42, 7), expected)


def test_truncate_keeps_every_coordinate_inside_and_the_inside_ones_unchanged():
    z = torch.randn(2000, 16, generator=torch.Generator().manual_seed(0))
    for psi in (1.0, 0.5, 0.05):
        t = noise.truncate(z, psi, torch.Generator().manual_seed(1))
        assert t.abs().max() <= psi and t.shape == z.shape
        inside = z.abs() <= psi
        assert torch.equal(t[inside], z[inside])
        assert not torch.equal(t, z)
        assert torch.equal(t, noise.truncate(z, psi, torch.Generator().manual_seed(1)))  # reproducible


def test_truncated_values_follow_the_truncated_normal():
    z = noise.truncate(torch.randn(200_000, generator=torch.Generator().manual_seed(0)), 1.0,
                       torch.Generator().manual_seed(1))
    # N(0, 1) truncated to [-1, 1]: variance 1 - 2 phi(1) / (2 Phi(1) - 1) = 0.29112
    assert z.mean().item() == pytest.approx(0.0, abs=0.005)
    assert z.var().item() == pytest.approx(0.29112, abs=0.005)


def test_a_tiny_truncation_finishes_and_follows_the_truncated_normal():
    """psi = 0.05: most coordinates outlast the rejection rounds and are drawn by inverse CDF; the values still
    follow N(0, 1) truncated to [-psi, psi]. psi = 1e-300 used to redraw forever."""
    psi = 0.05
    z = noise.truncate(torch.randn(200_000, generator=torch.Generator().manual_seed(0)), psi,
                       torch.Generator().manual_seed(1))
    assert z.abs().max() <= psi
    pdf, mass = math.exp(-psi**2 / 2) / math.sqrt(2 * math.pi), math.erf(psi / math.sqrt(2))  # phi(psi), 2 Phi - 1
    assert z.var().item() == pytest.approx(1 - 2 * psi * pdf / mass, rel=0.01)  # 8.32e-4
    assert abs(z.mean().item()) < 3 * psi / (3 * 200_000) ** 0.5
    assert noise.truncate(torch.randn(1000, 128), 1e-300).abs().max() <= 1e-300


def test_truncate_rejects_psi_outside_0_1():
    for psi in (0.0, -0.5, 1.5):
        with pytest.raises(ValueError, match=rf"^truncation must be in \(0, 1\], got {psi}$"):
            noise.truncate(torch.zeros(3), psi)


@pytest.mark.parametrize("text, seeds", [("7", [7]), ("1,5,9", [1, 5, 9]), ("0-3", [0, 1, 2, 3]),
                                         ("0-2,20", [0, 1, 2, 20]), ("9, 3-4", [9, 3, 4])])
def test_parse_seeds(text, seeds):
    assert noise.parse_seeds(text) == seeds


@pytest.mark.parametrize("text, message", [
    ("1,a", "--seeds: 'a' is not a seed or a range like 0-99 (seeds are integers >= 0)"),
    ("-3", "--seeds: '-3' is not a seed or a range like 0-99 (seeds are integers >= 0)"),
    ("", "--seeds: '' is not a seed or a range like 0-99 (seeds are integers >= 0)"),
    ("5-2", "--seeds: the range '5-2' runs backwards (write 2-5)"),
    ("1-3,2", "--seeds: seed 2 is listed twice"),
    (f"0-{2**63}", f"--seeds: seeds must be below 2**63, got {2**63}"),
])
def test_parse_seeds_errors(text, message):
    with pytest.raises(config.ConfigError) as e:
        noise.parse_seeds(text)
    assert str(e.value) == message


# ---- Sampler


def test_sample_without_truncation_is_unchanged(runs):
    s = ganforge.load(runs["mnist"])
    z = torch.randn(9, 8, generator=torch.Generator().manual_seed(5))  # the draw sample() always made
    before = generate(s.G, z)
    assert torch.equal(s.sample(9, seed=5), before)
    assert torch.equal(s.sample(9, seed=5, truncation=None), before)


def test_sample_with_truncation_truncates_with_the_same_generator(runs):
    s = ganforge.load(runs["1d"])
    gen = torch.Generator().manual_seed(3)
    z = noise.truncate(torch.randn(50, 4, generator=gen), 0.3, gen)
    assert torch.equal(s.sample(50, seed=3, truncation=0.3), generate(s.G, z))
    assert not torch.equal(s.sample(50, seed=3, truncation=0.3), s.sample(50, seed=3))


def test_sample_seeds_are_reproducible_and_independent_of_the_list(runs):
    s = ganforge.load(runs["mnist"])
    alone = s.sample_seeds([42])
    assert alone.shape == (1, 1, 28, 28)
    assert torch.equal(alone, generate(s.G, noise.seed_noise(42, 8)))
    torch.testing.assert_close(s.sample_seeds([3, 42, 7])[1:2], alone, rtol=0, atol=1e-6)
    torch.testing.assert_close(s.sample_seeds(list(range(40, 50)))[2:3], alone, rtol=0, atol=1e-6)
    many = s.sample_seeds([1, 2], truncation=0.5)
    torch.testing.assert_close(many[1:], s.sample_seeds([2], truncation=0.5), rtol=0, atol=1e-6)
    assert torch.equal(s.sample_seeds([2], truncation=0.5), generate(s.G, noise.seed_noise(2, 8, 0.5)))


def test_sample_seeds_on_a_conditional_g_needs_labels(runs):
    s = ganforge.load(runs["cond"])
    with pytest.raises(ValueError, match=r"^labels y are needed: this generator is conditional"):
        s.sample_seeds([1, 2])
    y = torch.tensor([3, 3])
    assert torch.equal(s.sample_seeds([1, 2], y=y), generate(s.G, torch.cat([noise.seed_noise(1, 8),
                                                                             noise.seed_noise(2, 8)]), y))
    assert s.class_names == NAMES


# ---- ganforge sample


def test_folder_of_pngs_named_by_seed_and_index(runs, tmp_path, capsys):
    out = tmp_path / "pngs"
    assert main(["sample", str(runs["mnist"]), "-n", "12", "--seed", "3", "--out", str(out)]) == 0
    assert capsys.readouterr().out == f"wrote 12 PNG files to {out}/\n"
    assert sorted(p.name for p in out.iterdir()) == [f"seed0003_{i:06d}.png" for i in range(12)]
    expected = to_uint8(ganforge.load(runs["mnist"]).sample(12, seed=3))[:, :, :, 0]  # (12, 28, 28)
    np.testing.assert_array_equal(np.asarray(Image.open(out / "seed0003_000011.png")), expected[11])


def test_seeds_write_one_png_per_seed(runs, tmp_path):
    out = tmp_path / "seeds"
    assert main(["sample", str(runs["mnist"]), "--seeds", "0-2,42", "--truncation", "0.7", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["seed0000.png", "seed0001.png", "seed0002.png", "seed0042.png"]
    expected = to_uint8(ganforge.load(runs["mnist"]).sample_seeds([42], truncation=0.7))[0, :, :, 0]
    np.testing.assert_array_equal(np.asarray(Image.open(out / "seed0042.png")), expected)


def test_seeds_to_npy_on_points(runs, tmp_path):
    assert main(["sample", str(runs["1d"]), "--seeds", "5,1", "--out", str(tmp_path / "x.npy")]) == 0
    x = np.load(tmp_path / "x.npy")
    np.testing.assert_array_equal(x, ganforge.load(runs["1d"]).sample_seeds([5, 1]).numpy())


def test_label_by_class_name_and_by_index(runs, tmp_path):
    s = ganforge.load(runs["cond"])
    for label in ("three", "3"):
        out = tmp_path / f"{label}.npy"
        assert main(["sample", str(runs["cond"]), "--seeds", "4,9", "--label", label, "--out", str(out)]) == 0
        np.testing.assert_array_equal(np.load(out), s.sample_seeds([4, 9], y=torch.tensor([3, 3])).numpy())
        assert np.load(out.with_name(f"{label}_labels.npy")).tolist() == [3, 3]
    assert main(["sample", str(runs["cond"]), "-n", "4", "--label", "nine", "--out", str(tmp_path / "n.npy")]) == 0
    assert np.load(tmp_path / "n_labels.npy").tolist() == [9] * 4


def _error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    return err.strip()


def test_sample_errors(runs, tmp_path, capsys):
    mnist, cond, x = str(runs["mnist"]), str(runs["cond"]), str(tmp_path / "x.npy")
    names = ", ".join(NAMES)
    cases = [
        (["sample", mnist, "--seeds", "1-3", "-n", "3", "--out", x], "--seeds gives one sample per seed: drop -n"),
        (["sample", mnist, "--seeds", "1-3", "--seed", "3", "--out", x],
         "--seeds gives each sample its own seed: drop --seed"),
        (["sample", mnist, "--seeds", "1,1", "--out", x], "--seeds: seed 1 is listed twice"),
        (["sample", mnist, "--truncation", "0", "--out", x], "--truncation must be in (0, 1], got 0.0"),
        (["sample", mnist, "--truncation", "1.5", "--out", x], "--truncation must be in (0, 1], got 1.5"),
        (["sample", mnist, "-n", "0", "--out", x], "-n must be positive, got 0"),
        (["sample", mnist, "--label", "cat", "--out", x],
         f"--label: {mnist} is not a conditional run (model.conditional = 'none')"),
        (["sample", cond, "--label", "cat", "--out", x], f"--label: no class named 'cat' (classes: {names})"),
        (["sample", cond, "--label", "10", "--out", x], "--label must be a class in 0..9, got 10"),
        (["sample", cond, "--seeds", "1,2", "--out", x],
         f"--seeds: {cond} is conditional: choose the class with --label (0..9 or a name)"),
    ]
    for argv, message in cases:
        assert _error(capsys, argv) == f"ganforge sample: error: {message}"


def test_label_name_on_a_run_without_names(tmp_path, capsys):
    run = _saved(tmp_path, TINY_MNIST + ['model.conditional="concat"'], "c", steps=1)
    assert _error(capsys, ["sample", str(run), "--label", "three", "--out", str(tmp_path / "x.npy")]) == (
        "ganforge sample: error: --label must be a class in 0..9, got 'three' (this run kept no class names)")
    assert main(["sample", str(run), "--seeds", "1", "--out", str(tmp_path / "y.npy")]) == 2
    assert capsys.readouterr().err.strip().endswith("choose the class with --label (0..9)")
