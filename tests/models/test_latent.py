import pytest
import torch

from ganforge import config, sampling, train
from ganforge.config import ModelConfig, NetConfig
from ganforge.models import MixtureLatent, MixtureLatentGenerator, build_generator


def test_components_are_uniform_and_disjoint():
    lat = MixtureLatent(10, 8, std=0.05)
    z = torch.randn(20000, 8, generator=torch.Generator().manual_seed(1))
    c = lat.component(z)
    counts = torch.bincount(c, minlength=10).float() / len(z)
    torch.testing.assert_close(counts, torch.full((10,), 0.1), atol=0.01, rtol=0)
    out = lat(z)  # (B, 8)
    # every output lies within a few std of its own component's mean and far from the others'
    d = torch.cdist(out, lat.means)  # (B, K)
    assert (d.argmin(1) == c).all()
    torch.testing.assert_close(out, lat.means[c] + 0.05 * z)


def test_the_means_are_fixed_by_the_architecture_not_the_global_seed():
    torch.manual_seed(0)
    a = MixtureLatent(4, 3, 0.1).means
    torch.manual_seed(123)
    torch.testing.assert_close(MixtureLatent(4, 3, 0.1).means, a)


def test_build_generator_wraps_any_g_and_keeps_labels():
    cfg = ModelConfig(z_dim=4, g=NetConfig(hidden=[8]), latent_components=5)
    G = build_generator(cfg, (2,), images=False)
    assert isinstance(G, MixtureLatentGenerator) and G(torch.randn(6, 4)).shape == (6, 2)
    cfg = ModelConfig(z_dim=4, g=NetConfig(hidden=[8]), latent_components=5, conditional="concat")
    G = build_generator(cfg, (2,), images=False, num_classes=3)
    assert G(torch.randn(6, 4), torch.arange(6) % 3).shape == (6, 2)


def test_train_save_and_load_round_trip(tmp_path):
    cfg = config.apply_overrides(config.load_preset("ring-8"), [
        "model.latent_components=6", "model.z_dim=3", "train.steps=20", "train.batch_size=32",
        "train.progress='none'", "train.tensorboard=false", "train.doctor=false", "train.animation=false"])
    run = train.train(cfg=config.apply_overrides(cfg, [f"train.out='{tmp_path / 'run'}'"]))
    s = sampling.load(tmp_path / "run")
    torch.testing.assert_close(s.sample(50, seed=3), s.sample(50, seed=3))
    z = torch.randn(5, 3)
    torch.testing.assert_close(s.G(z), run.sample_model(z))


@pytest.mark.parametrize("item, message", [
    ("model.latent_components=-1", "model.latent_components: must be zero or positive, got -1"),
    ("model.latent_std=0", "model.latent_std: must be positive, got 0"),
])
def test_bad_values(item, message):
    with pytest.raises(config.ConfigError, match=message):
        config.apply_overrides(config.Config(), [item])
