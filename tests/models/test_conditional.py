"""Label conditioning for both families: each mode's formula, label dependence, errors."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize
from torch.testing import assert_close

from ganforge.config import ModelConfig, NetConfig
from ganforge.models import build_discriminator, build_generator
from ganforge.models.conditional import MODES, fixed_labels, sample_labels

K = 3
SHAPES = {"mlp": (1, 8, 8), "dcgan": (2, 16, 16)}


def net(arch: str, **kw) -> NetConfig:
    return NetConfig(arch=arch, hidden=[16], channels=8, activation="leaky_relu", **kw)


def make(arch: str, mode: str, minibatch: str = "none", **kw):
    torch.manual_seed(0)
    cfg = ModelConfig(z_dim=5, g=net(arch, **kw), d=net(arch, minibatch=minibatch, **kw), conditional=mode)
    return build_generator(cfg, SHAPES[arch], True, K), build_discriminator(cfg, SHAPES[arch], K)


@pytest.mark.parametrize("arch", ["mlp", "dcgan"])
@pytest.mark.parametrize("mode", MODES)
def test_shapes_and_gradients_for_every_mode(arch, mode):
    G, D = make(arch, mode, "stddev")
    y = torch.tensor([0, 1, 2, 1])
    x = G(torch.randn(4, 5), y)
    assert x.shape == (4, *SHAPES[arch])
    out, cls = D(x, y)
    assert out.shape == (4,)
    loss = out.sum()
    if mode == "acgan":  # the class head's logits come back from the same forward call
        assert cls.shape == (4, K)
        loss = loss + F.cross_entropy(cls, y)
    else:
        assert cls is None
    loss.backward()
    for name, p in [*G.named_parameters(), *D.named_parameters()]:
        assert p.grad is not None, name


@pytest.mark.parametrize("arch", ["mlp", "dcgan"])
@pytest.mark.parametrize("mode", ["concat", "embed", "projection"])
def test_labels_change_both_networks_outputs(arch, mode):
    G, D = make(arch, mode)
    z, x = torch.randn(2, 5), torch.randn(2, *SHAPES[arch])
    a, b = torch.tensor([0, 0]), torch.tensor([1, 2])
    assert not torch.allclose(G(z, a), G(z, b))
    assert not torch.allclose(D(x, a)[0], D(x, b)[0])


@pytest.mark.parametrize("arch", ["mlp", "dcgan"])
def test_acgan_d_takes_no_labels_but_g_does(arch):
    G, D = make(arch, "acgan")
    x = torch.randn(2, *SHAPES[arch])
    (adv_y, cls_y), (adv, cls) = D(x, torch.tensor([0, 0])), D(x)
    assert torch.equal(adv_y, adv) and torch.equal(cls_y, cls)
    z = torch.ones(2, 5)
    assert not torch.allclose(G(z, torch.tensor([0, 0])), G(z, torch.tensor([1, 2])))


def test_concat_g_feeds_one_hot_labels_after_the_noise():
    G, _ = make("mlp", "concat")
    z, y = torch.randn(4, 5), torch.tensor([2, 0, 1, 2])
    assert_close(G(z, y), G.base(torch.cat([z, F.one_hot(y, K).float()], 1)))
    assert G.base.body[0].in_features == 5 + K


def test_concat_d_mlp_appends_one_hot_to_the_flattened_data():
    _, D = make("mlp", "concat")
    x, y = torch.randn(4, *SHAPES["mlp"]), torch.tensor([2, 0, 1, 2])
    joined = torch.cat([x.flatten(1), F.one_hot(y, K).float()], 1)  # (B, 64 + K)
    assert_close(D(x, y)[0], D.out(nn.Sequential(*D.body)(joined)).squeeze(1))
    assert D.body[0].in_features == 64 + K


def test_concat_d_dcgan_adds_constant_label_channels():
    _, D = make("dcgan", "concat")
    x, y = torch.randn(4, *SHAPES["dcgan"]), torch.tensor([2, 0, 1, 2])
    maps = F.one_hot(y, K).float()[:, :, None, None].expand(4, K, 16, 16)  # (B, K, H, W)
    assert_close(D(x, y)[0], D.out(nn.Sequential(*D.body)(torch.cat([x, maps], 1))).squeeze(1))
    assert D.body[0].in_channels == 2 + K


@pytest.mark.parametrize("arch", ["mlp", "dcgan"])
def test_embed_mode_uses_a_learned_code_of_width_k(arch):
    G, D = make(arch, "embed")
    assert isinstance(G.code.embed, nn.Embedding) and G.code.embed.weight.shape == (K, K)
    x, y = torch.randn(3, *SHAPES[arch]), torch.tensor([1, 1, 0])
    with torch.no_grad():
        D.code.embed.weight.copy_(torch.eye(K))  # an identity embedding is the one-hot code
    _, Dc = make(arch, "concat")
    Dc.load_state_dict({k: v for k, v in D.state_dict().items() if not k.startswith("code.")})
    assert_close(D(x, y)[0], Dc(x, y)[0])


@pytest.mark.parametrize("arch", ["mlp", "dcgan"])
def test_projection_adds_the_inner_product_of_embedding_and_features(arch):
    _, D = make(arch, "projection")
    x, y = torch.randn(4, *SHAPES[arch]), torch.tensor([0, 2, 1, 0])
    h = D.features(x)
    assert_close(D(x, y)[0], D.out(h).squeeze(1) + (D.embed.weight[y] * h).sum(1))
    assert D.embed.weight.shape == (K, D.out.in_features)
    # the label only enters through <embed(y), h>
    assert_close(D(x, y)[0] - D(x, torch.zeros_like(y))[0], ((D.embed.weight[y] - D.embed.weight[0]) * h).sum(1))


def test_projection_g_embeds_and_acgan_g_uses_one_hot():
    assert isinstance(make("mlp", "projection")[0].code.embed, nn.Embedding)
    assert make("mlp", "acgan")[0].code.embed is None and make("mlp", "acgan")[0].code.width == K


def test_spectral_norm_covers_the_class_heads():
    _, D = make("dcgan", "projection", spectral_norm=True)
    assert parametrize.is_parametrized(D.embed, "weight") and parametrize.is_parametrized(D.out, "weight")
    _, D = make("mlp", "acgan", spectral_norm=True)
    assert parametrize.is_parametrized(D.aux, "weight")


def test_minibatch_widths():
    assert make("mlp", "none", "discrimination")[1].out.in_features == 16 + 32
    assert make("dcgan", "projection", "stddev")[1].embed.weight.shape == (K, 8 * 4 * 4 + 1)


def test_user_errors():
    msg = "model.conditional: 'proj' is not one of none, concat, embed, projection, acgan"
    with pytest.raises(ValueError, match=msg):
        build_discriminator(ModelConfig(d=net("mlp"), conditional="proj"), (2,), K)
    with pytest.raises(ValueError, match=msg):
        build_generator(ModelConfig(g=net("mlp"), conditional="proj"), (2,), False, K)
    msg = r"model.conditional: 'concat' needs labelled data \(num_classes >= 2\), got num_classes=0"
    with pytest.raises(ValueError, match=msg):
        build_generator(ModelConfig(z_dim=4, g=net("mlp"), conditional="concat"), (2,), False, 0)
    G, D = make("mlp", "projection")
    with pytest.raises(ValueError, match="labels y are required when model.conditional is 'projection'"):
        D(torch.randn(2, *SHAPES["mlp"]))
    with pytest.raises(ValueError, match="labels y are required when model.conditional is 'projection'"):
        G(torch.randn(2, 5))


def test_mode_none_needs_no_labels_and_ignores_them():
    G, D = make("mlp", "none")
    z = torch.randn(2, 5)
    x = G(z)
    logits, cls = D(x)
    assert logits.shape == (2,) and cls is None
    assert torch.equal(G(z, torch.tensor([0, 1])), x) and torch.equal(D(x, torch.tensor([0, 1]))[0], logits)
    build_generator(ModelConfig(z_dim=4, g=net("mlp")), (2,), False, 0)  # unlabelled data is fine


def test_label_helpers():
    assert fixed_labels(7, 3).tolist() == [0, 1, 2, 0, 1, 2, 0]
    torch.manual_seed(0)
    y = sample_labels(30_000, 10)
    assert y.dtype == torch.int64 and y.min() == 0 and y.max() == 9
    counts = torch.bincount(y, minlength=10).float()
    assert (counts / 3000 - 1).abs().max() < 0.06  # uniform over the classes
