"""Minibatch discrimination, minibatch std-dev and PacGAN packing (models/layers.py)."""

import math

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from ganforge.models.layers import (
    MinibatchDiscrimination,
    MinibatchStdDev,
    minibatch_layer,
    norm_2d,
    pack,
    packed_shape,
)


def mbstd_loop(x: torch.Tensor, group: int) -> torch.Tensor:
    """Reference: for each sample, the mean over its features of the population std of its group."""
    b = x.shape[0]
    m = b // group
    out = []
    for i in range(b):
        members = torch.stack([x[j] for j in range(b) if j % m == i % m])  # samples i, i + B/G, ...
        out.append(((members - members.mean(0)).square().mean(0) + 1e-8).sqrt().mean())
    return torch.stack(out)


def test_mbstd_flat_matches_a_loop():
    x = torch.randn(8, 5)
    out = MinibatchStdDev(4)(x)
    assert out.shape == (8, 6)
    assert torch.equal(out[:, :5], x)
    assert_close(out[:, 5], mbstd_loop(x, 4))


def test_mbstd_images_append_one_constant_channel():
    x = torch.randn(6, 3, 4, 4)
    out = MinibatchStdDev(3)(x)
    assert out.shape == (6, 4, 4, 4)
    assert torch.equal(out[:, :3], x)
    want = mbstd_loop(x, 3)  # (B,)
    assert_close(out[:, 3], want[:, None, None].expand(6, 4, 4))


def test_mbstd_of_identical_samples_is_zero_up_to_its_epsilon():
    x = torch.randn(1, 2, 4, 4).expand(8, 2, 4, 4)
    assert_close(MinibatchStdDev()(x)[:, 2], torch.full((8, 4, 4), math.sqrt(1e-8)))
    # a hand value: feature 0 takes 0, 2, 0, 2 (std 1), feature 1 is constant (std 0): mean 0.5
    hand = torch.tensor([[0.0, 3.0], [2.0, 3.0], [0.0, 3.0], [2.0, 3.0]])
    assert_close(MinibatchStdDev()(hand)[:, 2], torch.full((4,), (math.sqrt(1 + 1e-8) + 1e-4) / 2))


def test_mbstd_groups_and_batch_errors():
    x = torch.randn(8, 3)
    x[1::2] = x[1]  # odd samples identical: with groups {i % 2}, their group has zero spread
    s = MinibatchStdDev(4)(x)[:, 3]
    assert_close(s[1::2], torch.full((4,), 1e-4))
    assert (s[0::2] > 0.1).all()
    assert_close(MinibatchStdDev(4)(x[:3])[:, 3], mbstd_loop(x[:3], 3))  # a batch smaller than the group
    with pytest.raises(ValueError, match="MinibatchStdDev: batch size 6 is not a multiple of group_size 4"):
        MinibatchStdDev(4)(torch.randn(6, 3))


def mbdisc_loop(x: torch.Tensor, T: torch.Tensor, n: int, k: int) -> torch.Tensor:
    """Reference: o_ib = sum over j != i of exp(-sum_c |M_ibc - M_jbc|)."""
    M = (x @ T).view(len(x), n, k)
    o = torch.zeros(len(x), n)
    for i in range(len(x)):
        for j in range(len(x)):
            if i != j:
                o[i] += torch.exp(-(M[i] - M[j]).abs().sum(1))
    return o


def test_minibatch_discrimination_matches_a_loop():
    torch.manual_seed(0)
    layer = MinibatchDiscrimination(6, 4, 3)
    x = torch.randn(5, 6)
    out = layer(x)
    assert out.shape == (5, 10)
    assert torch.equal(out[:, :6], x)
    assert_close(out[:, 6:], mbdisc_loop(x, layer.T.detach(), 4, 3))


def test_minibatch_discrimination_sees_the_other_samples():
    torch.manual_seed(0)
    layer = MinibatchDiscrimination(6, 4, 3)
    x = torch.randn(3, 6)
    before = layer(x)[0, 6:]
    x2 = x.clone()
    x2[1] += 1.0  # only another sample changes
    assert not torch.allclose(layer(x2)[0, 6:], before)
    assert torch.equal(layer(x[:1])[0, 6:], torch.zeros(4))  # alone in the batch: nothing to compare with
    assert_close(layer(x[:1].expand(2, 6))[:, 6:], torch.ones(2, 4))  # a twin contributes exp(0) = 1
    x3 = x.clone().requires_grad_(True)
    layer(x3)[0, 6:].sum().backward()
    assert x3.grad[1].abs().sum() > 0  # the gradient reaches the other samples


def test_minibatch_layer_registry():
    assert minibatch_layer("none", 10)[1] == 10 and isinstance(minibatch_layer("none", 10)[0], nn.Identity)
    assert minibatch_layer("stddev", 10)[1] == 11
    layer, width = minibatch_layer("discrimination", 10)
    assert width == 42 and layer(torch.randn(2, 10)).shape == (2, 42)
    msg = "model.d.minibatch: 'std' is not one of none, discrimination, stddev"
    with pytest.raises(ValueError, match=msg):
        minibatch_layer("std", 10)


def test_pack_images_stacks_consecutive_samples_on_channels():
    x = torch.randn(6, 2, 3, 3)
    p = pack(x, 3)
    assert p.shape == (2, 6, 3, 3) == (2, *packed_shape((2, 3, 3), 3))
    for i in range(2):
        for k in range(3):
            assert torch.equal(p[i, 2 * k : 2 * k + 2], x[3 * i + k])  # sample i*m + k: channels k*C..


def test_pack_flat_data_and_errors():
    x = torch.arange(12.0).view(6, 2)
    assert pack(x, 2).tolist() == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    assert packed_shape((2,), 2) == (4,)
    assert pack(x, 1) is x
    with pytest.raises(ValueError, match=r"model.pack: the batch \(6\) must be a multiple of pack \(4\)"):
        pack(x, 4)


def test_norm_2d_kinds():
    assert isinstance(norm_2d("none", 4), nn.Identity)
    assert isinstance(norm_2d("batch", 4), nn.BatchNorm2d)
    assert isinstance(norm_2d("instance", 4), nn.InstanceNorm2d) and norm_2d("instance", 4).affine
    assert isinstance(norm_2d("layer", 4), nn.GroupNorm) and norm_2d("layer", 4).num_groups == 1
