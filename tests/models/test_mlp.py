"""MLP generator and discriminator (its trunk under the shared heads): reference shapes, config knobs, names."""

import torch

from ganforge.config import NetConfig
from ganforge.models import Discriminator, MLPGenerator, MLPTrunk


def MLPDiscriminator(cfg: NetConfig, shape: tuple[int, ...]) -> Discriminator:  # noqa: N802
    """The unconditional mlp D: the MLP trunk under the shared heads."""
    return Discriminator(MLPTrunk, cfg, shape)


def test_reference_shapes_and_ranges():
    G = MLPGenerator(NetConfig(hidden=[256, 256]), 100, (1, 28, 28), tanh=True)
    D = MLPDiscriminator(NetConfig(hidden=[256, 256], activation="leaky_relu"), (1, 28, 28))
    x = G(torch.randn(7, 100))
    assert x.shape == (7, 1, 28, 28) and x.min() >= -1 and x.max() <= 1
    assert D(x)[0].shape == (7,) and D(x)[1] is None
    # the reference's layer sizes: 100-256-256-784 and 784-256-256-1
    assert [p.shape for p in G.parameters() if p.dim() == 2] == [(256, 100), (256, 256), (784, 256)]
    assert [p.shape for p in D.parameters() if p.dim() == 2] == [(256, 784), (256, 256), (1, 256)]


def test_depth_width_activation_dropout_are_config():
    cfg = NetConfig(hidden=[8, 16, 4], activation="elu", dropout=0.5, norm="layer")
    D = MLPDiscriminator(cfg, (3,))
    kinds = [type(m).__name__ for m in D.body]
    assert kinds == ["Linear", "LayerNorm", "ELU", "Dropout"] * 3
    G = MLPGenerator(NetConfig(hidden=[5]), 2, (1,), tanh=False)
    assert G(torch.full((4, 2), 100.0)).abs().max() > 1  # toy data: no Tanh squashing


def test_spectral_norm_option():
    D = MLPDiscriminator(NetConfig(hidden=[8], spectral_norm=True), (4,))
    assert hasattr(D.out, "parametrizations")


def test_weight_names_of_the_reference_d_are_unchanged():
    """Checkpoints written before the shared Discriminator keep loading: body.<i> and out, nothing else."""
    D = MLPDiscriminator(NetConfig(hidden=[8, 4], activation="leaky_relu"), (3,))
    assert list(D.state_dict()) == ["body.0.weight", "body.0.bias", "body.3.weight", "body.3.bias", "out.weight",
                                    "out.bias"]
