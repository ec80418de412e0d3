"""Every loss in the registry against values computed by hand with the math module, and at extreme logits."""

import math

import pytest
import torch
from torch.testing import assert_close

from ganforge import losses
from ganforge.losses import LOSSES


def sp(v: float) -> float:
    """softplus(v) = log(1 + e^v), computed independently of torch."""
    return max(v, 0.0) + math.log1p(math.exp(-abs(v)))


def mean(*vs: float) -> float:
    return sum(vs) / len(vs)


REAL, FAKE = [2.0, -1.0], [0.5, -3.0]  # means 0.5 and -1.25
# (D loss, G loss) at REAL, FAKE with no smoothing, written out from each paper's formula
EXPECTED = {
    "bce": (mean(sp(-2), sp(1)) + mean(sp(0.5), sp(-3)), mean(sp(-0.5), sp(3))),
    "minimax": (mean(sp(-2), sp(1)) + mean(sp(0.5), sp(-3)), -mean(sp(0.5), sp(-3))),
    # 1/2 mean((r - 1)^2) + 1/2 mean(f^2) = 0.5 * (1 + 9) / 2 + 0.5 * (0.25 + 9) / 2; G: 0.5 * (0.25 + 16) / 2
    "lsgan": (3.5625, 4.0625),
    # relu(1 - r): 0, 2; relu(1 + f): 1.5, 0; G: -mean(f)
    "hinge": (1.0 + 0.75, 1.25),
    "wgan": (-1.25 - 0.5, 1.25),
    # real - mean(fake) = [3.25, 0.25], fake - mean(real) = [0, -3.5]
    "ragan": (mean(sp(-3.25), sp(-0.25)) + mean(sp(0), sp(-3.5)),
              mean(sp(0), sp(3.5)) + mean(sp(3.25), sp(0.25))),
}


def t(v) -> torch.Tensor:
    return torch.tensor(v, dtype=torch.float32)


def test_every_registered_loss_has_expected_values():
    assert set(LOSSES) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_values_on_known_logits(name):
    loss, (d_want, g_want) = LOSSES[name], EXPECTED[name]
    assert_close(loss.d(t(REAL), t(FAKE), 0.0), t(d_want))
    assert_close(loss.g(t(FAKE), t(REAL)), t(g_want))


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_needs_real_for_g_flag_matches_the_g_loss(name):
    loss = LOSSES[name]
    other_real = t([-5.0, 7.0])
    moved = not torch.equal(loss.g(t(FAKE), t(REAL)), loss.g(t(FAKE), other_real))
    assert moved == loss.needs_real_for_g
    if not loss.needs_real_for_g:
        assert_close(loss.g(t(FAKE), None), t(EXPECTED[name][1]))


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_finite_losses_and_gradients_at_extreme_logits(name):
    loss = LOSSES[name]
    real = t([100.0, -100.0, 100.0, -100.0]).requires_grad_(True)
    fake = t([-100.0, 100.0, 100.0, -100.0]).requires_grad_(True)
    total = loss.d(real, fake, 0.1) + loss.g(fake, real)
    total.backward()
    assert torch.isfinite(total)
    assert torch.isfinite(real.grad).all() and torch.isfinite(fake.grad).all()


def test_bce_limits_at_extreme_logits():
    # a perfect D costs softplus(-100) ~ 4e-44 (0 in float32 after the mean); a fooled one costs 100 per term
    assert_close(losses.bce_d(t([100.0]), t([-100.0])), t(0.0))
    assert_close(losses.bce_d(t([-100.0]), t([100.0])), t(200.0))
    assert_close(losses.nonsaturating_g(t([100.0])), t(0.0))
    assert_close(losses.nonsaturating_g(t([-100.0])), t(100.0))
    assert_close(losses.minimax_g(t([-100.0])), t(0.0))
    assert_close(losses.minimax_g(t([100.0])), t(-100.0))
    assert_close(losses.ragan_d(t([100.0, 100.0]), t([-100.0, -100.0])), t(0.0))
    assert_close(losses.ragan_d(t([-100.0, -100.0]), t([100.0, 100.0])), t(400.0))
    assert_close(losses.ragan_g(t([100.0, 100.0]), t([-100.0, -100.0])), t(0.0))


def test_bce_gradient_saturates_to_sigmoid_limits():
    # d/dr softplus(-r) = -sigmoid(-r): -1 for a badly wrong real logit, 0 for a confident right one
    real = t([-100.0, 100.0]).requires_grad_(True)
    losses.bce_d(real, t([0.0, 0.0])).backward()
    assert_close(real.grad, t([-0.5, 0.0]))  # mean over 2
    fake = t([-100.0, 100.0]).requires_grad_(True)
    losses.nonsaturating_g(fake).backward()
    assert_close(fake.grad, t([-0.5, 0.0]))  # the non-saturating G still gets a gradient when D wins


def test_polynomial_losses_exact_at_extreme_logits():
    assert_close(losses.lsgan_d(t([100.0]), t([-100.0])), t(0.5 * 99**2 + 0.5 * 100**2))
    assert_close(losses.hinge_d(t([100.0]), t([-100.0])), t(0.0))
    assert_close(losses.hinge_d(t([-100.0]), t([100.0])), t(202.0))
    assert_close(losses.wgan_d(t([-100.0]), t([100.0])), t(200.0))


def test_bce_smoothing_targets_one_minus_s_for_real_only():
    s = 0.1
    # BCE(r, 1 - s) = (1 - s) softplus(-r) + s softplus(r); fakes keep target 0: softplus(f)
    want = mean((1 - s) * sp(-2) + s * sp(2), (1 - s) * sp(1) + s * sp(-1)) + mean(sp(0.5), sp(-3))
    assert_close(losses.bce_d(t(REAL), t(FAKE), s), t(want))
    # so the change is s * mean(real) whatever the fakes are: softplus(r) - softplus(-r) = r
    for fake in (FAKE, [9.0, -9.0]):
        delta = losses.bce_d(t(REAL), t(fake), s) - losses.bce_d(t(REAL), t(fake), 0.0)
        assert_close(delta, t(s * 0.5))


def test_lsgan_smoothing_moves_the_real_target_only():
    # 1/2 mean((r - 0.9)^2) + 1/2 mean(f^2)
    want = 0.5 * mean(1.1**2, 1.9**2) + 0.5 * mean(0.25, 9.0)
    assert_close(losses.lsgan_d(t(REAL), t(FAKE), 0.1), t(want))


def test_make_loss_binds_lsgan_targets():
    from ganforge.config import LossConfig
    from ganforge.losses import make_loss

    loss = make_loss(LossConfig(name="lsgan", lsgan_a=-1.0, lsgan_b=1.0, lsgan_c=0.0))
    real, fake = torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 1.0])
    # D: 1/2 mean((real - 1)^2) + 1/2 mean((fake + 1)^2) = 1/2 * 0.5 + 1/2 * 2 = 1.25
    torch.testing.assert_close(loss.d(real, fake), torch.tensor(1.25))
    # G: 1/2 mean((fake - 0)^2) = 0.5
    torch.testing.assert_close(loss.g(fake, None), torch.tensor(0.5))
    assert make_loss(LossConfig(name="hinge")) is LOSSES["hinge"]
