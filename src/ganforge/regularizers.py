"""Gradient penalties on D: pure functions (D, inputs) -> scalar, differentiable w.r.t. D's weights.

Each returns the bare expectation; the loop multiplies by the weight: gamma/2 for R1/R2 (Mescheder et
al. 2018 write the penalty as gamma/2 E||grad||^2), lambda for WGAN-GP (Gulrajani et al. 2017, lambda=10).
`REGULARIZERS` holds that factor next to each function, so the loop adds `scale * gamma * fn(...)`.
Compute penalties in fp32 (outside bf16 autocast): squared gradients underflow in bf16.

D follows the interface of every ganforge D, `D(x, y) -> (logits, aux)`; the penalties use the logits.
Under DistributedDataParallel the input gradients come from `torch.autograd.grad` (per process: they never
reach DDP's hooks) and the penalty joins D's loss, whose ordinary backward averages D's weight gradients
over the processes once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

import torch
from torch import nn

if TYPE_CHECKING:  # pragma: no cover
    from ganforge.rng import RunRandom

Tensor = torch.Tensor


def _input_grads(D: nn.Module, x: Tensor, y: Tensor | None) -> Tensor:
    """grad_x sum_i D(x)_i, flattened per sample (B, prod(shape)); the graph is kept so a penalty trains D."""
    x = x.detach().requires_grad_(True)
    logits = D(x, y)[0]  # (B,)
    # row i is grad_{x_i} D(x_i) when D treats samples independently (minibatch layers add cross terms)
    (g,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
    return g.flatten(1)


def r1_penalty(D: nn.Module, real: Tensor, y: Tensor | None = None) -> Tensor:
    """Mescheder et al. 2018 (R1): E_x ||grad_x D(x)||^2 on real data, without the gamma/2 factor."""
    return _input_grads(D, real, y).square().sum(1).mean()


def r2_penalty(D: nn.Module, fake: Tensor, y: Tensor | None = None) -> Tensor:
    """Mescheder et al. 2018 (R2): E ||grad D(G(z))||^2 on generated data, without the gamma/2 factor."""
    return _input_grads(D, fake, y).square().sum(1).mean()


def wgan_gp_penalty(D: nn.Module, real: Tensor, fake: Tensor, y: Tensor | None = None,
                    e: Tensor | None = None) -> Tensor:
    """Gulrajani et al. 2017: E (||grad D(x_hat)|| - 1)^2, x_hat = e x + (1 - e) G(z), e ~ U[0, 1].

    `e` (B,) are the mixing weights; drawn from torch's global stream when not given.
    """
    if e is None:
        e = torch.rand(real.shape[0], device=real.device, dtype=real.dtype)
    e = e.view(real.shape[0], *([1] * (real.dim() - 1)))  # (B, 1, ...)
    x_hat = torch.lerp(fake.detach(), real.detach(), e)
    return (_input_grads(D, x_hat, y).norm(dim=1) - 1.0).square().mean()  # norm: finite grad at 0


def mix_weights(n: int, streams: RunRandom, like: Tensor) -> Tensor:
    """WGAN-GP's n mixing weights U[0, 1) from the run's penalty stream: this process's share of the draw
    for the global batch (n * world), so N processes mix as one does."""
    draw = torch.rand(n * streams.world, generator=streams["penalty"], device=streams.device, dtype=like.dtype)
    return streams.slice(draw).to(like.device)


class Regularizer(NamedTuple):
    fn: Callable[..., Tensor]  # (D, real, fake, y_real, y_fake, streams: RunRandom | None) -> scalar
    scale: float  # the loop adds scale * gamma * fn(...): 1/2 for R1/R2 (gamma/2), 1 for WGAN-GP (lambda)


def _wgan_gp(D: nn.Module, real: Tensor, fake: Tensor, y_real: Tensor | None, y_fake: Tensor | None,
             streams: RunRandom | None = None) -> Tensor:
    e = mix_weights(len(real), streams, real) if streams is not None else None
    return wgan_gp_penalty(D, real, fake, y_real, e)  # interpolates carry the real labels


REGULARIZERS: dict[str, Regularizer] = {
    "r1": Regularizer(lambda D, real, fake, y_real, y_fake, streams=None: r1_penalty(D, real, y_real), 0.5),
    "r2": Regularizer(lambda D, real, fake, y_real, y_fake, streams=None: r2_penalty(D, fake, y_fake), 0.5),
    "wgan-gp": Regularizer(_wgan_gp, 1.0),
}
