"""DCGAN generator and discriminator (its trunk under the shared heads): shapes, depth plan, parameter counts."""

import dataclasses

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from ganforge.config import ModelConfig, NetConfig
from ganforge.models import Discriminator, build_discriminator, build_generator
from ganforge.models.dcgan import DCGANGenerator, DCGANTrunk, conv_plan, widths


def nparams(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def g_cfg(**kw) -> NetConfig:
    return NetConfig(arch="dcgan", channels=8, **kw)


def d_cfg(**kw) -> NetConfig:
    return NetConfig(arch="dcgan", channels=8, activation="leaky_relu", **kw)


def DCGANDiscriminator(cfg: NetConfig, shape: tuple[int, ...], minibatch: str = "none") -> Discriminator:  # noqa: N802
    """The unconditional dcgan D: the conv trunk under the shared heads."""
    return Discriminator(DCGANTrunk, dataclasses.replace(cfg, minibatch=minibatch), shape)


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (3, 64, 64), (4, 64, 64)])
def test_shapes_at_each_resolution(shape):
    G, D = DCGANGenerator(g_cfg(norm="batch"), 5, shape), DCGANDiscriminator(d_cfg(), shape)
    x = G(torch.randn(6, 5))
    assert x.shape == (6, *shape)
    assert x.abs().max() <= 1  # Tanh output
    assert D(x)[0].shape == (6,) and D(x)[1] is None
    assert torch.equal(G.eval()(torch.ones(2, 5), torch.tensor([0, 1])), G(torch.ones(2, 5)))  # y is ignored


def test_depth_comes_from_the_resolution():
    assert conv_plan((1, 28, 28), "g") == (7, 2)
    assert conv_plan((3, 32, 32), "g") == (4, 3)
    assert conv_plan((3, 64, 64), "g") == (4, 4)
    assert widths(64, 4) == [64, 32, 16, 8]
    assert widths(8, 4) == [8, 4, 2, 1]
    convs = [m for m in DCGANDiscriminator(d_cfg(), (3, 64, 64)).modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(3, 1), (1, 2), (2, 4), (4, 8)]


@pytest.mark.parametrize(("shape", "msg"), [
    ((1, 30, 30), "image side 30 does not halve to 4..7"),
    ((1, 28, 32), r"needs square images \(C, H, W\), got shape \(1, 28, 32\)"),
    ((784,), r"needs square images \(C, H, W\), got shape \(784,\)"),
    ((1, 6, 6), "image side 6 does not halve"),
])
def test_unsupported_shapes_name_the_setting(shape, msg):
    with pytest.raises(ValueError, match=r"model.g.arch 'dcgan': " + msg):
        DCGANGenerator(g_cfg(), 4, shape)
    with pytest.raises(ValueError, match=r"model.d.arch 'dcgan': " + msg):
        DCGANDiscriminator(d_cfg(), shape)


def test_exact_parameter_counts_at_tiny_width():
    # 28x28x1, channels 8, z 4. G: Linear(4, 8*7*7) 4*392+392 = 1960; ConvT(8->4, 4x4) 512+4; ConvT(4->1) 64+1
    assert nparams(DCGANGenerator(g_cfg(), 4, (1, 28, 28))) == 1960 + 516 + 65
    # with batch norm the biases go and BN adds 2 per channel: 1568+16, 512+8, 65
    assert nparams(DCGANGenerator(g_cfg(norm="batch"), 4, (1, 28, 28))) == 1584 + 520 + 65
    # D: Conv(1->4) 64+4, Conv(4->8) 512+8, Linear(8*7*7, 1) 393
    assert nparams(DCGANDiscriminator(d_cfg(), (1, 28, 28))) == 68 + 520 + 393
    # 64x64x3: G Linear(4, 8*4*4) 640, ConvT 8->4 516, 4->2 130, 2->1 33, 1->3 51
    assert nparams(DCGANGenerator(g_cfg(), 4, (3, 64, 64))) == 640 + 516 + 130 + 33 + 51


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (3, 64, 64)])
def test_gradients_reach_every_parameter(shape):
    torch.manual_seed(0)
    G, D = DCGANGenerator(g_cfg(norm="batch"), 5, shape), DCGANDiscriminator(d_cfg(spectral_norm=True), shape)
    D(G(torch.randn(4, 5)))[0].sum().backward()
    for name, p in [*G.named_parameters(), *D.named_parameters()]:
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_norms_activations_and_spectral_norm_follow_the_config():
    kinds = lambda m: {type(x) for x in m.modules()}  # noqa: E731
    assert nn.BatchNorm2d in kinds(DCGANGenerator(g_cfg(norm="batch"), 4, (1, 28, 28)))
    assert nn.InstanceNorm2d in kinds(DCGANGenerator(g_cfg(norm="instance"), 4, (1, 28, 28)))
    assert nn.GroupNorm in kinds(DCGANGenerator(g_cfg(norm="layer"), 4, (1, 28, 28)))
    assert not kinds(DCGANGenerator(g_cfg(), 4, (1, 28, 28))) & {nn.BatchNorm2d, nn.InstanceNorm2d}
    with pytest.raises(ValueError, match="norm: 'group' is not one of none, batch, instance, layer"):
        DCGANGenerator(g_cfg(norm="group"), 4, (1, 28, 28))
    D = DCGANDiscriminator(d_cfg(spectral_norm=True), (1, 32, 32))
    slopes = {m.negative_slope for m in D.modules() if isinstance(m, nn.LeakyReLU)}
    assert slopes == {0.2}
    weighted = [m for m in D.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert len(weighted) == 4 and all(parametrize.is_parametrized(m, "weight") for m in weighted)
    assert not any(parametrize.is_parametrized(m) for m in DCGANDiscriminator(d_cfg(), (1, 32, 32)).modules())


def test_spectral_norm_on_g_wraps_every_weight_layer():
    """model.g.spectral_norm used to wrap only G's optional fc layers, leaving the projection and every conv
    unnormalised."""
    G = DCGANGenerator(g_cfg(spectral_norm=True, blocks=1, fc=[32]), 4, (1, 28, 28))
    weighted = [m for m in G.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]
    assert len(weighted) == 6 and all(parametrize.is_parametrized(m, "weight") for m in weighted)  # fc, project,
    # a 3x3 conv at 7x7, the 7 -> 14 up-conv and its 3x3 conv, the 14 -> 28 out-conv
    assert G(torch.randn(3, 4)).shape == (3, 1, 28, 28)
    assert not any(parametrize.is_parametrized(m) for m in DCGANGenerator(g_cfg(), 4, (1, 28, 28)).modules())


def test_spectral_norm_bounds_the_out_layer():
    D = DCGANDiscriminator(d_cfg(spectral_norm=True), (1, 28, 28))
    for _ in range(30):  # power iterations run in train mode
        D(torch.randn(2, 1, 28, 28))
    sigma = torch.linalg.matrix_norm(D.out.weight.detach(), ord=2)
    assert abs(sigma.item() - 1.0) < 1e-3


def test_minibatch_layer_widens_the_out_layer():
    assert DCGANDiscriminator(d_cfg(), (1, 28, 28), "stddev").out.in_features == 8 * 49 + 1
    assert DCGANDiscriminator(d_cfg(), (1, 28, 28), "discrimination").out.in_features == 8 * 49 + 32


def test_dcgan_init_option():
    torch.manual_seed(0)
    cfg = ModelConfig(z_dim=16, g=NetConfig(arch="dcgan", channels=64, norm="batch", init="dcgan"),
                      d=NetConfig(arch="dcgan", channels=64, init="dcgan", spectral_norm=True))
    G, D = build_generator(cfg, (1, 28, 28), images=True), build_discriminator(cfg, (1, 28, 28))
    convs = [m for m in G.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    w = torch.cat([m.weight.flatten() for m in convs])
    assert abs(w.std().item() - 0.02) < 0.002 and abs(w.mean().item()) < 0.002
    assert all(torch.all(m.bias == 0) for m in convs if m.bias is not None)
    bn = [m for m in G.modules() if isinstance(m, torch.nn.BatchNorm2d)][0]
    assert abs(bn.weight.mean().item() - 1) < 0.01 and 0.01 < bn.weight.std().item() < 0.03
    conv = D.body[0]
    assert abs(conv.parametrizations.weight.original.std().item() - 0.02) < 0.005  # spectral norm: the raw weight
    torch.manual_seed(0)
    default = build_generator(ModelConfig(z_dim=16, g=NetConfig(arch="dcgan", channels=64)), (1, 28, 28), True)
    assert default.project.weight.std().item() > 0.05  # PyTorch's init (uniform, bound 1/sqrt(16)) is untouched


@pytest.mark.parametrize("side", [28, 32])
def test_blocks_add_same_size_convs_to_g_and_d(side):
    cfg = NetConfig(arch="dcgan", channels=16, norm="batch", blocks=2)
    G, D = DCGANGenerator(cfg, 8, (3, side, side)), DCGANDiscriminator(cfg, (3, side, side))
    n = conv_plan((3, side, side), "x")[1]  # resolutions
    for net in (G, D):
        extra = [m for m in net.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
        assert len(extra) == 2 * n and all(m.stride == (1, 1) for m in extra)
    x = G(torch.randn(4, 8))
    assert x.shape == (4, 3, side, side) and D(x)[0].shape == (4,)


def test_fc_layers_between_z_and_convs():
    cfg = NetConfig(arch="dcgan", channels=16, norm="batch", fc=[32, 24])
    G, D = DCGANGenerator(cfg, 8, (1, 28, 28)), DCGANDiscriminator(cfg, (1, 28, 28))
    assert [m.out_features for m in G.fc if isinstance(m, nn.Linear)] == [32, 24]
    assert G.project.in_features == 24 and D.out.in_features == 24
    assert G(torch.randn(5, 8)).shape == (5, 1, 28, 28) and D(torch.randn(5, 1, 28, 28))[0].shape == (5,)
    plain = DCGANGenerator(NetConfig(arch="dcgan", channels=16), 8, (1, 28, 28))
    assert not any(k.startswith("fc.") for k in plain.state_dict())  # no fc: the checkpoint keys are unchanged
