"""Latent walks: slerp, the closed walk through seeds, class walks, the frames written, and the CLI's errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

import ganforge
from ganforge import interpolate, noise
from ganforge.cli import main
from ganforge.data.images_family import to_uint8
from ganforge.interpolate import latent_walk, slerp
from ganforge.viz import animation
from tests.conftest import TINY_1D, TINY_MNIST
from tests.test_sampling import NAMES, _saved


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("runs")
    return {"1d": _saved(tmp, TINY_1D, "1d"), "mnist": _saved(tmp, TINY_MNIST, "mnist"),
            "cond": _saved(tmp, TINY_MNIST + ['model.conditional="embed"'], "cond", class_names=NAMES),
            "2d": _saved(tmp, TINY_1D[1:] + ['data.name="ring-8"'], "2d")}


def _gif(path) -> tuple[list[np.ndarray], list[int]]:
    frames, durations = [], []
    with Image.open(path) as gif:
        for i in range(gif.n_frames):
            gif.seek(i)
            frames.append(np.asarray(gif.convert("L")))
            durations.append(gif.info["duration"])
    return frames, durations


# ---- slerp and latent_walk


def test_slerp_endpoints_are_exact():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(5, 16, generator=g), torch.randn(5, 16, generator=g)
    assert torch.equal(slerp(a, b, 0.0), a) and torch.equal(slerp(a, b, 1.0), b)
    t = torch.tensor([[0.0], [1.0]])
    out = slerp(a[0], b[0], t)  # (2, 16)
    assert torch.equal(out[0], a[0]) and torch.equal(out[1], b[0]) and out.dtype == torch.float32


def test_slerp_of_unit_vectors_stays_on_the_sphere_at_an_even_angle():
    g = torch.Generator().manual_seed(1)
    a, b = torch.nn.functional.normalize(torch.randn(2, 32, generator=g, dtype=torch.float64), dim=1)
    t = torch.linspace(0, 1, 11, dtype=torch.float64)[:, None]  # (11, 1)
    out = slerp(a, b, t)  # (11, 32)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(11, dtype=torch.float64), rtol=0, atol=1e-12)
    angle = torch.arccos((a @ b).clamp(-1, 1))
    torch.testing.assert_close(torch.arccos((out @ a).clamp(-1, 1)), t[:, 0] * angle, rtol=0, atol=1e-7)


def test_slerp_midpoint_of_orthogonal_unit_vectors():
    e1, e2 = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0])
    h = math.sqrt(0.5)
    torch.testing.assert_close(slerp(e1, e2, 0.5), torch.tensor([h, h, 0.0]), rtol=0, atol=1e-7)
    torch.testing.assert_close(slerp(e1, e2, 1 / 3), torch.tensor([math.cos(math.pi / 6), 0.5, 0.0]),
                               rtol=0, atol=1e-7)


@pytest.mark.parametrize("b_of_a", [lambda a: 2.5 * a, lambda a: -a, lambda a: -3 * a, lambda a: torch.zeros_like(a)])
def test_slerp_falls_back_to_lerp_for_parallel_antiparallel_and_zero(b_of_a):
    a = torch.tensor([0.3, -1.2, 2.0, 0.7])
    b = b_of_a(a)
    t = torch.tensor([[0.0], [0.25], [0.5], [1.0]])
    out = slerp(a, b, t)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, (1 - t) * a + t * b, rtol=0, atol=1e-6)


def test_latent_walk_visits_every_point_and_loops():
    g = torch.Generator().manual_seed(2)
    pts = torch.randn(3, 8, generator=g)
    walk = latent_walk(pts, 5)
    assert walk.shape == (15, 8)
    for i in range(3):
        assert torch.equal(walk[5 * i], pts[i])
    # the last segment heads back to the first point: its next frame (t = 1) would be pts[0]
    torch.testing.assert_close(walk[14], slerp(pts[2], pts[0], 0.8), rtol=0, atol=0)
    torch.testing.assert_close(walk[1], slerp(pts[0], pts[1], 0.2), rtol=0, atol=0)
    assert torch.equal(latent_walk(pts[:2], 1), pts[:2])


def test_latent_walk_errors():
    with pytest.raises(ValueError, match=r"^latent_walk needs at least 2 points \(K, D\), got shape \(1, 4\)$"):
        latent_walk(torch.zeros(1, 4), 3)
    with pytest.raises(ValueError, match=r"^latent_walk: frames must be at least 1, got 0$"):
        latent_walk(torch.zeros(2, 4), 0)


# ---- walks of a trained G


def test_seed_walk_starts_at_each_seeds_noise(runs):
    s = ganforge.load(runs["mnist"])
    z, y = interpolate.seed_walk(s, [4, 9], 6, truncation=0.5)
    assert z.shape == (12, 8) and y is None
    assert torch.equal(z[0:1], noise.seed_noise(4, 8, 0.5)) and torch.equal(z[6:7], noise.seed_noise(9, 8, 0.5))


def test_class_walk_holds_z_and_steps_through_classes(runs):
    s = ganforge.load(runs["cond"])
    z, y = interpolate.class_walk(s, 7, 3)
    assert z.shape == (30, 8) and torch.equal(z, noise.seed_noise(7, 8).expand(30, 8))
    assert y.tolist() == [c for c in range(10) for _ in range(3)]


def test_image_walk_gif_first_frame_is_the_first_seeds_sample(runs, tmp_path, capsys):
    out = tmp_path / "walk.gif"
    assert main(["interpolate", str(runs["mnist"]), "--seeds", "3,8,1", "--frames", "4", "--fps", "10",
                 "--truncation", "0.8", "--out", str(out)]) == 0
    assert capsys.readouterr().out == f"wrote a walk of 12 frames to {out}\n"
    frames, durations = _gif(out)
    assert len(frames) == 12 and durations == [100] * 12
    s = ganforge.load(runs["mnist"])
    for frame, seed in ((frames[0], 3), (frames[4], 8), (frames[8], 1)):
        pixels = to_uint8(s.sample_seeds([seed], truncation=0.8))[0, :, :, 0]  # (28, 28)
        assert frame.shape == (252, 252)  # 28 px drawn 9x
        np.testing.assert_array_equal(frame[::9, ::9], pixels)
        np.testing.assert_array_equal(frame, np.kron(pixels, np.ones((9, 9), np.uint8)))
    assert not np.array_equal(frames[1], frames[0])


def test_walk_frames_are_gs_samples_along_the_walk(runs):
    s = ganforge.load(runs["mnist"])
    z, _ = interpolate.seed_walk(s, [0, 1], 3)
    frames = interpolate.walk_frames(s, z)
    assert len(frames) == 6 and frames[0].size == (252, 252)
    expected = to_uint8(s.sample_seeds([1]))[0, :, :, 0]
    np.testing.assert_array_equal(np.asarray(frames[3])[::9, ::9], expected)


def test_conditional_walks_by_label_name_and_by_class(runs, tmp_path):
    s = ganforge.load(runs["cond"])
    out = tmp_path / "seven.gif"
    assert main(["interpolate", str(runs["cond"]), "--seeds", "2,5", "--label", "seven", "--frames", "2",
                 "--out", str(out)]) == 0
    frames, _ = _gif(out)
    assert len(frames) == 4
    np.testing.assert_array_equal(frames[2][::9, ::9], to_uint8(s.sample_seeds([5], y=torch.tensor([7])))[0, :, :, 0])
    out = tmp_path / "classes.gif"
    argv = ["interpolate", str(runs["cond"]), "--seeds", "5", "--classes", "--frames", "2", "--out", str(out)]
    assert main(argv) == 0
    frames, durations = _gif(out)
    assert len(frames) == 10 and durations == [100] * 10  # the GIF writer merges each class's 2 equal frames
    for c in range(10):
        expected = to_uint8(s.sample_seeds([5], y=torch.tensor([c])))[0, :, :, 0]
        np.testing.assert_array_equal(frames[c][::9, ::9], expected)
    assert main(["interpolate", str(runs["cond"]), "--frames", "1", "--out", str(out)]) == 0  # no seeds: seed 0
    np.testing.assert_array_equal(_gif(out)[0][3][::9, ::9],
                                  to_uint8(s.sample_seeds([0], y=torch.tensor([3])))[0, :, :, 0])


@pytest.mark.parametrize("name", ["1d", "2d"])
def test_points_walk_moves_a_marker_over_the_samples(runs, tmp_path, name):
    out = tmp_path / f"{name}.gif"
    assert main(["interpolate", str(runs[name]), "--frames", "3", "--out", str(out)]) == 0  # seeds 0-3
    with Image.open(out) as gif:
        assert gif.size == (400, 400) and 2 <= gif.n_frames <= 12  # equal consecutive frames are merged
        durations = []
        for i in range(gif.n_frames):
            gif.seek(i)
            durations.append(gif.info["duration"])
        assert sum(durations) == 12 * 50
        gif.seek(0)
        first = np.asarray(gif.convert("RGB")).astype(int)
        gif.seek(1)
        second = np.asarray(gif.convert("RGB")).astype(int)
    red = (np.abs(first - [214, 39, 40]).sum(-1) < 60)
    assert red.sum() > 20  # the marker
    assert (np.abs(first - second).sum(-1) > 0).sum() > 0  # it moved


def test_mp4_when_ffmpeg_is_found(runs, tmp_path):
    if animation.ffmpeg_exe() is None:
        pytest.skip("no ffmpeg (pip install imageio-ffmpeg)")
    out = tmp_path / "w.mp4"
    assert main(["interpolate", str(runs["mnist"]), "--seeds", "0,1", "--frames", "3", "--out", str(out)]) == 0
    assert out.stat().st_size > 0


def test_interpolate_errors(runs, tmp_path, capsys, monkeypatch):
    mnist, cond, gif = str(runs["mnist"]), str(runs["cond"]), str(tmp_path / "w.gif")
    cases = [
        (["interpolate", mnist, "--out", str(tmp_path / "w.avi")], "--out: a walk is written as .gif or .mp4, "
                                                                   "got 'w.avi'"),
        (["interpolate", mnist, "--out", gif, "--frames", "0"], "--frames must be at least 1, got 0"),
        (["interpolate", mnist, "--out", gif, "--fps", "0"], "--fps must be positive, got 0.0"),
        (["interpolate", mnist, "--out", gif, "--truncation", "2"], "--truncation must be in (0, 1], got 2.0"),
        (["interpolate", mnist, "--out", gif, "--seeds", "4"], "--seeds: a latent walk needs at least 2 seeds, got 1"),
        (["interpolate", mnist, "--out", gif, "--classes"],
         f"--classes: {mnist} is not a conditional run (model.conditional = 'none')"),
        (["interpolate", mnist, "--out", gif, "--label", "1"],
         f"--label: {mnist} is not a conditional run (model.conditional = 'none')"),
        (["interpolate", cond, "--out", gif, "--seeds", "1,2"],
         "--seeds: a class walk holds one z: give one seed, or --label K|NAME for a latent walk"),
        (["interpolate", cond, "--out", gif, "--classes", "--label", "two"],
         "--classes steps through every class: drop --label"),
        (["interpolate", cond, "--out", gif, "--label", "ten"],
         f"--label: no class named 'ten' (classes: {', '.join(NAMES)})"),
        (["interpolate", str(tmp_path / "nowhere"), "--out", gif],
         f"no checkpoint at {tmp_path / 'nowhere'} (expected a run folder or a .safetensors file)"),
    ]
    for argv, message in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err == f"ganforge interpolate: error: {message}\n"
    monkeypatch.setattr(animation, "ffmpeg_exe", lambda: None)
    assert main(["interpolate", mnist, "--out", str(tmp_path / "w.mp4")]) == 2
    assert capsys.readouterr().err == (
        "ganforge interpolate: error: --out: writing .mp4 needs ffmpeg (pip install imageio-ffmpeg, or install "
        "ffmpeg on PATH); write a .gif instead (w.gif)\n")
    assert not (tmp_path / "w.mp4").exists() and not (tmp_path / "w.gif").exists()


def test_write_frames_refuses_mp4_without_ffmpeg(tmp_path, monkeypatch):
    monkeypatch.setattr(animation, "ffmpeg_exe", lambda: None)
    with pytest.raises(RuntimeError, match=r"^write_frames: writing .mp4 needs ffmpeg .*write a .gif instead$"):
        animation.write_frames([Image.new("RGB", (4, 4))], tmp_path / "a.mp4", 10)
