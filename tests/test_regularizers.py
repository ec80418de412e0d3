"""Gradient penalties against gradients known in closed form."""

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from ganforge.regularizers import REGULARIZERS, mix_weights, r1_penalty, r2_penalty, wgan_gp_penalty
from ganforge.rng import RunRandom


class Linear(nn.Module):
    """D(x) = w . flatten(x) + b, so grad_x D = w for every input (the D interface: (logits, aux))."""

    def __init__(self, w: list[float]):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(w))
        self.b = nn.Parameter(torch.tensor(0.3))

    def forward(self, x, y=None):
        return x.flatten(1) @ self.w + self.b, None


class ClassLinear(nn.Module):
    """D(x, y) = W[y] . flatten(x): the gradient is the row of the sample's class."""

    def __init__(self, W: list[list[float]]):
        super().__init__()
        self.W = nn.Parameter(torch.tensor(W))

    def forward(self, x, y=None):
        return (self.W[y] * x.flatten(1)).sum(1), None


class HalfSquare(nn.Module):
    """D(x) = 1/2 ||x||^2 per sample, so grad_x D = x."""

    def forward(self, x, y=None):
        return 0.5 * x.flatten(1).square().sum(1), None


W4 = [1.0, -2.0, 2.0, 0.5]  # ||w||^2 = 9.25


@pytest.mark.parametrize("shape", [(5, 4), (5, 1, 2, 2), (5, 4, 1)])
def test_penalties_of_a_linear_d_in_any_input_shape(shape):
    D = Linear(W4)
    real, fake = torch.randn(shape), torch.randn(shape)
    assert_close(r1_penalty(D, real), torch.tensor(9.25))
    assert_close(r2_penalty(D, fake), torch.tensor(9.25))
    assert_close(wgan_gp_penalty(D, real, fake), torch.tensor((9.25**0.5 - 1) ** 2))
    assert not real.requires_grad and real.grad is None  # the caller's tensors are left alone


def test_penalties_train_d_create_graph():
    D = Linear(W4)
    r1_penalty(D, torch.randn(3, 4)).backward()
    assert_close(D.w.grad, 2 * torch.tensor(W4))  # d/dw ||w||^2
    D.w.grad = None
    wgan_gp_penalty(D, torch.randn(3, 4), torch.randn(3, 4)).backward()
    w, norm = torch.tensor(W4), 9.25**0.5
    assert_close(D.w.grad, 2 * (norm - 1) * w / norm)  # d/dw (||w|| - 1)^2


def test_penalties_of_an_input_dependent_gradient():
    x = torch.tensor([[3.0, 4.0], [0.0, 0.5]])  # norms 5 and 0.5
    assert_close(r1_penalty(HalfSquare(), x), torch.tensor((25.0 + 0.25) / 2))
    # real == fake makes every interpolate the same point, whatever the random mix
    assert_close(wgan_gp_penalty(HalfSquare(), x, x), torch.tensor((16.0 + 0.25) / 2))


def test_interpolates_lie_between_real_and_fake():
    seen = []

    class Spy(Linear):
        def forward(self, x, y=None):
            seen.append(x.detach())
            return super().forward(x)

    real, fake = torch.zeros(64, 1), torch.ones(64, 1)
    wgan_gp_penalty(Spy([1.0]), real, fake)
    e = seen[0][:, 0]  # x_hat = e * 0 + (1 - e) * 1
    assert (e >= 0).all() and (e <= 1).all() and e.std() > 0.1  # one mix per sample, spread over [0, 1]


def test_labels_reach_d_and_registry_picks_the_right_batch():
    D = ClassLinear([[1.0, 0.0], [0.0, 3.0]])  # squared row norms 1 and 9
    real, fake = torch.randn(2, 2), torch.randn(2, 2)
    y_real, y_fake = torch.tensor([0, 0]), torch.tensor([1, 0])
    assert_close(r1_penalty(D, real, y_real), torch.tensor(1.0))
    assert_close(r2_penalty(D, fake, y_fake), torch.tensor(5.0))
    assert_close(REGULARIZERS["r1"].fn(D, real, fake, y_real, y_fake), torch.tensor(1.0))
    assert_close(REGULARIZERS["r2"].fn(D, real, fake, y_real, y_fake), torch.tensor(5.0))
    # interpolates use the real labels: ||row 0|| = 1, no penalty
    assert_close(REGULARIZERS["wgan-gp"].fn(D, real, fake, y_real, y_fake), torch.tensor(0.0))
    assert {k: r.scale for k, r in REGULARIZERS.items()} == {"r1": 0.5, "r2": 0.5, "wgan-gp": 1.0}


def test_wgan_gp_mixes_with_the_given_weights_or_the_runs_penalty_stream():
    seen = []

    class Spy(Linear):
        def forward(self, x, y=None):
            seen.append(x.detach())
            return super().forward(x)

    real, fake = torch.zeros(4, 1), torch.ones(4, 1)
    e = torch.tensor([0.0, 0.25, 0.5, 1.0])
    wgan_gp_penalty(Spy([1.0]), real, fake, e=e)
    assert_close(seen[-1][:, 0], 1 - e)  # x_hat = e * 0 + (1 - e) * 1
    streams = RunRandom(7)
    expected = mix_weights(4, RunRandom(7), real)  # the same stream, drawn the same way
    REGULARIZERS["wgan-gp"].fn(Spy([1.0]), real, fake, None, None, streams)
    assert_close(seen[-1][:, 0], 1 - expected)
    assert not torch.equal(streams["penalty"].get_state(), RunRandom(7)["penalty"].get_state())  # it moved
