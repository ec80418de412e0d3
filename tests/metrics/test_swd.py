"""Sliced Wasserstein distance: exact zeros, a slow scipy reference, and what it sees (blur, clipping, modes)."""

import math

import numpy as np
import pytest
import torch
from scipy import ndimage, stats

from ganforge import metrics
from ganforge.metrics.swd import _blur, _random_draws, level_sizes, swd  # the package's `swd` is the function

FAST = {"descriptors_per_image": 64, "directions": 32}  # 128 images -> 8k descriptors a level; ~0.2 s


def textures(n: int, seed: int, channels: int = 1, side: int = 32) -> torch.Tensor:
    """Smooth random textures in [-1, 1]: binomially blurred white noise through tanh, (n, C, side, side)."""
    g = torch.Generator().manual_seed(seed)
    x = _blur(torch.randn(n, channels, side, side, generator=g))
    return torch.tanh(x / x.std())


def stripes(n: int, seed: int, vertical: bool | None = None) -> torch.Tensor:
    """Noisy sine stripes of random frequency and phase, half horizontal and half vertical unless told."""
    g = torch.Generator().manual_seed(seed)
    freq = 2 * math.pi * (0.05 + 0.15 * torch.rand(n, 1, generator=g))
    wave = torch.sin(freq * torch.arange(32.0) + 2 * math.pi * torch.rand(n, 1, generator=g))  # (n, 32)
    vert = torch.arange(n) % 2 == 0 if vertical is None else torch.full((n,), vertical)
    img = torch.where(vert[:, None, None], wave[:, None, :].expand(n, 32, 32), wave[:, :, None].expand(n, 32, 32))
    return (img + 0.2 * torch.randn(n, 32, 32, generator=g)).clamp(-1, 1)[:, None]  # (n, 1, 32, 32)


@pytest.fixture(scope="module")
def pair():
    return textures(128, seed=1), textures(128, seed=2)


@pytest.fixture(scope="module")
def base(pair):
    return swd(*pair, **FAST)


def test_registered():
    from ganforge.metrics.registry import METRICS

    assert METRICS["swd"].fn is swd and metrics.swd is swd and "swd" in metrics.__all__


def test_identical_sets_score_exactly_zero(pair):
    real = pair[0]
    assert swd(real, real.clone(), **FAST) == {"swd": 0.0, "swd_levels": [0.0, 0.0], "swd_resolutions": [32, 16]}
    rgb = textures(8, seed=3, channels=3, side=64)
    out = swd(rgb.numpy(), rgb, descriptors_per_image=8, directions=8)
    assert out == {"swd": 0.0, "swd_levels": [0.0] * 3, "swd_resolutions": [64, 32, 16]}


def test_level_sizes():
    assert level_sizes(256, 16) == [256, 128, 64, 32, 16]  # as the reference's resolutions
    assert level_sizes(32, 16) == [32, 16]
    assert level_sizes(28, 16) == [28]
    assert level_sizes(28, 7) == [28, 14, 7]
    assert level_sizes(33, 16) == [33, 17]


def _reference(real: np.ndarray, fake: np.ndarray, draws: dict, patch: int) -> list[float]:
    """ProGAN's algorithm written plainly: scipy mirror convolutions, loops, float64, scipy's 1-D W1."""
    k = np.outer([1, 4, 6, 4, 1], [1, 4, 6, 4, 1])[None, None] / 256.0

    def pyramid(x):
        levels = [x]
        for _ in range(1, len(draws["positions"])):
            down = ndimage.convolve(levels[-1], k, mode="mirror")[:, :, ::2, ::2]
            up = np.zeros_like(levels[-1])
            up[:, :, ::2, ::2] = down
            levels[-1] = levels[-1] - ndimage.convolve(up, 4 * k, mode="mirror")
            levels.append(down)
        return levels

    def descriptors(level, pos):
        d = np.array([[level[i, :, y : y + patch, x : x + patch] for y, x in pos[i].tolist()]
                      for i in range(len(level))])  # (N, K, C, patch, patch)
        d = d.reshape(-1, *d.shape[2:])
        d = (d - d.mean(axis=(0, 2, 3), keepdims=True)) / d.std(axis=(0, 2, 3), keepdims=True)
        return d.reshape(len(d), -1)

    out = []
    for la, lb, pos, dirs in zip(pyramid(real), pyramid(fake), draws["positions"], draws["directions"], strict=True):
        da, db = descriptors(la, pos), descriptors(lb, pos)
        dirs = dirs.double().numpy()
        w = [stats.wasserstein_distance(da @ dirs[r, :, j], db @ dirs[r, :, j])
             for r in range(dirs.shape[0]) for j in range(dirs.shape[2])]
        out.append(1e3 * float(np.mean(w)))
    return out


def test_matches_slow_reference():
    real, fake = textures(5, seed=4, channels=3), textures(5, seed=5, channels=3) ** 3
    kw = {"descriptors_per_image": 6, "directions": 10, "repeats": 3, "seed": 7}
    got = swd(real, fake, **kw)
    draws = _random_draws(7, 5, 5, [32, 16], 3 * 49, 6, 7, 10, 3)
    want = _reference(real.double().numpy(), fake.double().numpy(), draws, patch=7)
    assert got["swd_resolutions"] == [32, 16]
    np.testing.assert_allclose(got["swd_levels"], want, rtol=1e-6)
    assert got["swd"] == pytest.approx(np.mean(want), rel=1e-6)
    assert min(want) > 50  # not a trivially small comparison


def test_independent_samples_score_small_and_shrink_with_more_descriptors(pair, base):
    assert 0 < base["swd"] < 30
    fewer = swd(textures(32, seed=1), textures(32, seed=2), **FAST)  # 1/4 of the images
    assert base["swd"] < 0.7 * fewer["swd"]  # ~1/sqrt(4) expected


def test_global_shift_or_contrast_is_invisible_by_design(pair, base):
    """Each set is normalised by its own per-channel mean and std, as in ProGAN: x -> a x + b changes nothing."""
    real, fake = pair
    shifted = swd(real, 0.5 * fake + 0.3, **FAST)
    np.testing.assert_allclose(shifted["swd_levels"], base["swd_levels"], rtol=1e-5)
    assert swd(real, real + 0.3, **FAST)["swd"] == pytest.approx(0, abs=1e-3)


def test_clipped_shift_raises_it_and_grows_with_the_shift(pair, base):
    real, fake = pair
    vals = [swd(real, (fake + c).clamp(-1, 1), **FAST)["swd"] for c in (0.5, 1.0, 1.5)]
    assert base["swd"] < vals[0] < vals[1] < vals[2]
    assert vals[2] > 2 * base["swd"]


def test_blur_raises_the_finest_level_more_than_the_coarsest(pair, base):
    real, fake = pair
    blurred = swd(real, _blur(fake), **FAST)
    rise = np.subtract(blurred["swd_levels"], base["swd_levels"])  # finest first
    assert rise[0] > 1.5 * rise[-1] and rise[0] > base["swd_levels"][0]


def test_missing_mode_raises_it():
    real = stripes(128, seed=1)  # half horizontal, half vertical stripes
    both = swd(real, stripes(128, seed=2), **FAST)["swd"]
    horizontal_only = swd(real, stripes(128, seed=2, vertical=False), **FAST)["swd"]
    assert horizontal_only > 2 * both


def test_seeded_and_deterministic(pair, base):
    assert swd(*pair, **FAST) == base
    other = swd(*pair, **FAST, seed=1)
    assert other["swd"] != base["swd"] and other["swd"] == pytest.approx(base["swd"], rel=0.3)


def test_larger_set_is_subsampled_to_the_smaller(pair):
    real, fake = pair[0][:100], pair[1]
    keep = _random_draws(3, 100, 128, [32, 16], 49, 64, 7, 32, 4)["fake"]
    assert keep.tolist() == sorted(set(keep.tolist())) and len(keep) == 100
    assert swd(real, fake, **FAST, seed=3) == swd(real, fake[keep], **FAST, seed=3)
    assert swd(fake, real, **FAST, seed=3) == swd(fake[keep], real, **FAST, seed=3)


def test_threads_do_not_change_the_result(pair, base):
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        two = swd(*pair, **FAST)
    finally:
        torch.set_num_threads(threads)
    np.testing.assert_allclose(two["swd_levels"], base["swd_levels"], rtol=1e-6)
    assert threads == torch.get_num_threads()


def test_blur_matches_scipy_mirror_convolution():
    x = torch.randn(2, 3, 17, 20, dtype=torch.float64)
    k = np.outer([1, 4, 6, 4, 1], [1, 4, 6, 4, 1])[None, None] / 256.0
    np.testing.assert_allclose(_blur(x).numpy(), ndimage.convolve(x.numpy(), k, mode="mirror"), atol=1e-12)


@pytest.mark.parametrize("real, fake, kwargs, message", [
    (torch.zeros(4, 32, 32), None, {}, r"real: expected images \(N, C, H, W\), got shape \(4, 32, 32\)"),
    (torch.zeros(0, 1, 32, 32), None, {}, r"real: expected images \(N, C, H, W\), got shape \(0, 1, 32, 32\)"),
    (torch.zeros(4, 1, 32, 16), None, {}, "real: swd needs square images, got 32x16"),
    (torch.zeros(4, 1, 8, 8), None, {}, "images are 8x8: swd needs a side of at least min_res=16"),
    (torch.zeros(4, 1, 32, 32), torch.zeros(4, 3, 32, 32), {},
     r"real and fake images differ in shape: \(1, 32, 32\) and \(3, 32, 32\)"),
    (torch.zeros(4, 1, 32, 32), torch.full((4, 1, 32, 32), float("nan")), {},
     "fake: images contain NaN or infinite values"),
    (torch.zeros(4, 1, 32, 32), None, {"directions": 0}, "directions: must be a positive integer, got 0"),
    (torch.zeros(4, 1, 32, 32), None, {"patch": 2.5}, "patch: must be a positive integer, got 2.5"),
    (torch.zeros(4, 1, 32, 32), None, {"min_res": 4}, r"min_res: must be an integer >= patch \(7\) and >= 2, got 4"),
])
def test_errors(real, fake, kwargs, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        swd(real, real if fake is None else fake, **kwargs)
