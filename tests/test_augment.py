"""DiffAugment operations and instance noise."""

import pytest
import torch
from torch.testing import assert_close

from ganforge.augment import POLICIES, cutout, diff_augment, instance_noise, noise_std, translation


@pytest.mark.parametrize("policy", ["color", "translation", "cutout", "color,translation,cutout", "cutout ,"])
@pytest.mark.parametrize("shape", [(4, 1, 28, 28), (3, 3, 32, 32)])
def test_shapes_and_gradients(policy, shape):
    x = torch.randn(shape, requires_grad=True)
    out = diff_augment(x, policy)
    assert out.shape == shape and out.dtype == x.dtype
    out.square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_empty_policy_is_identity():
    x = torch.randn(2, 3, 8, 8)
    assert torch.equal(diff_augment(x, ""), x)
    flat = torch.randn(5, 2)  # flat data passes through when no policy is asked for
    assert torch.equal(diff_augment(flat, ""), flat)


def test_deterministic_under_manual_seed():
    x = torch.randn(4, 3, 16, 16)
    torch.manual_seed(7)
    a = diff_augment(x)
    torch.manual_seed(7)
    b = diff_augment(x)
    assert torch.equal(a, b)
    assert not torch.equal(a, diff_augment(x))  # and random otherwise


def test_errors_name_the_setting():
    msg = r"train.augment: unknown DiffAugment policy 'colour' \(valid: color, translation, cutout\)"
    with pytest.raises(ValueError, match=msg):
        diff_augment(torch.zeros(1, 1, 8, 8), "colour,cutout")
    msg = r"train.augment: DiffAugment needs images \(B, C, H, W\), got shape \(5, 2\)"
    with pytest.raises(ValueError, match=msg):
        diff_augment(torch.zeros(5, 2), "color")
    assert list(POLICIES) == ["color", "translation", "cutout"]


def test_color_on_a_constant_grey_image_adds_one_offset_per_image():
    # saturation (1 channel) and contrast (no spread) keep a constant image; brightness adds U[-0.5, 0.5)
    x = torch.full((64, 1, 4, 4), 0.2)
    out = diff_augment(x, "color")
    offset = out - 0.2
    assert_close(offset, offset[:, :, :1, :1].expand_as(offset))
    assert (offset.abs() <= 0.5).all() and offset.flatten(1)[:, 0].std() > 0.1


def reference_shift(img: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """out[i, j] = img[i + dy, j + dx], zero outside: an independent loop implementation."""
    out = torch.zeros_like(img)
    _, h, w = img.shape
    for i in range(h):
        for j in range(w):
            if 0 <= i + dy < h and 0 <= j + dx < w:
                out[:, i, j] = img[:, i + dy, j + dx]
    return out


def test_translation_is_an_integer_shift_with_zero_fill():
    torch.manual_seed(0)
    x = torch.randn(16, 2, 8, 8)
    out = translation(x)  # up to int(8 * 0.125 + 0.5) = 1 pixel each way
    shifts = set()
    for img, got in zip(x, out, strict=True):
        shifts_1px = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
        match = [s for s in shifts_1px if torch.equal(got, reference_shift(img, *s))]
        assert len(match) == 1
        shifts.add(match[0])
    assert len(shifts) > 3  # each image draws its own shift


def test_cutout_zeroes_one_clipped_square_and_passes_gradient_elsewhere():
    torch.manual_seed(0)
    x = torch.ones(32, 1, 8, 8, requires_grad=True)
    out = cutout(x)  # side int(8 * 0.5 + 0.5) = 4
    out.sum().backward()
    assert_close(x.grad, out.detach())  # gradient 1 where kept, 0 where cut
    for img in out[:, 0]:
        cut = img == 0
        rows, cols = cut.any(1), cut.any(0)
        assert torch.equal(cut, rows[:, None] & cols[None, :])  # one axis-aligned rectangle
        for line in (rows, cols):
            idx = line.nonzero().flatten()
            assert 2 <= len(idx) <= 4 and idx[-1] - idx[0] + 1 == len(idx)  # contiguous, at most the side
    assert (out == 0).flatten(1).sum(1).max() == 16  # an unclipped square somewhere


def test_instance_noise_and_its_decay():
    x = torch.zeros(200_000)
    assert instance_noise(x, 0.0) is x
    torch.manual_seed(0)
    noisy = instance_noise(x, 0.5)
    assert abs(noisy.std().item() - 0.5) < 0.005 and abs(noisy.mean().item()) < 0.005
    assert [noise_std(s, 0.2, 100) for s in (0, 25, 100, 300)] == [0.2, 0.2 * 0.75, 0.0, 0.0]
    assert noise_std(10_000, 0.2, 0) == 0.2  # no decay
