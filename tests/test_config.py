import pytest

from ganforge import config
from ganforge.config import Config, ConfigError


def test_defaults_round_trip_through_toml(tmp_path):
    cfg = config.load_preset("mnist-mlp-reference")
    path = tmp_path / "c.toml"
    path.write_text(config.dump_toml(cfg))
    assert config.load_toml(path) == cfg


def test_reference_preset_values():
    cfg = config.load_preset("mnist-mlp-reference")
    assert (cfg.model.z_dim, cfg.model.g.hidden, cfg.model.d.hidden) == (100, [256, 256], [256, 256])
    assert (cfg.g_optim.lr, cfg.d_optim.lr, cfg.train.batch_size, cfg.train.epochs) == (2e-4, 2e-4, 100, 100)
    assert cfg.loss.name == "bce" and cfg.model.d.activation == "leaky_relu" and cfg.model.d.leaky_slope == 0.2
    g1 = config.load_preset("gaussian-1d-reference")
    assert (g1.model.z_dim, g1.model.g.hidden, g1.train.batch_size, g1.train.steps) == (10, [128], 64, 10001)


def test_unknown_key_suggests_closest():
    with pytest.raises(ConfigError, match=r"unknown config key 'train.batchsize' \(did you mean 'batch_size'\?\)"):
        config.from_dict({"train": {"batchsize": 3}})


def test_unknown_section_suggests_closest():
    with pytest.raises(ConfigError, match=r"unknown config key 'trian' \(did you mean 'train'\?\)"):
        config.from_dict({"trian": {}})


def test_bad_type_names_key():
    with pytest.raises(ConfigError, match=r"^train.steps: expected an integer, got 'many'$"):
        config.from_dict({"train": {"steps": "many"}})
    with pytest.raises(ConfigError, match=r"^model.g.hidden\[1\]: expected an integer, got 'x'$"):
        config.from_dict({"model": {"g": {"hidden": [3, "x"]}}})


def test_bad_choice_and_range():
    with pytest.raises(ConfigError, match=r"^model.g.activation: 'relu6' is not one of relu, leaky_relu"):
        config.from_dict({"model": {"g": {"activation": "relu6"}}})
    with pytest.raises(ConfigError, match=r"^train.batch_size: must be positive, got 0$"):
        config.from_dict({"train": {"batch_size": 0}})
    with pytest.raises(ConfigError, match=r"unknown dataset 'mnits' \(did you mean 'mnist'\?\)"):
        config.from_dict({"data": {"name": "mnits"}})


def test_override_parsing_and_precedence():
    cfg = config.apply_overrides(config.load_preset("gaussian-1d-reference"),
                                 ["train.steps=7", "model.g.hidden=[3, 4]", "data.name=mnist-5k", "model.ema=0.9"])
    assert cfg.train.steps == 7 and cfg.model.g.hidden == [3, 4] and cfg.data.name == "mnist-5k"
    assert cfg.model.ema == 0.9 and cfg.model.z_dim == 10  # untouched preset values stay
    with pytest.raises(ConfigError, match="--set expects section.key=value"):
        config.apply_overrides(Config(), ["train.steps"])


def test_unknown_preset():
    with pytest.raises(ConfigError, match=r"unknown preset 'mnist-mpl' \(did you mean 'mnist-mlp'\?\)"):
        config.load_preset("mnist-mpl")


def test_total_steps_from_epochs():
    cfg = config.load_preset("mnist-mlp-reference")
    assert config.total_steps(cfg, 60000) == 60000  # 100 epochs of 600 batches
    assert config.total_steps(config.apply_overrides(cfg, ["train.steps=5"]), 60000) == 5


def test_eval_every_must_not_be_negative():
    with pytest.raises(ConfigError, match=r"^eval.every: must be zero or positive, got -1$"):
        config.from_dict({"eval": {"every": -1}})


def test_rules_are_keyed_by_full_path():
    """Every rule names real fields; wildcards cover both nets and both optimizers; switches are real fields."""
    rules = config._rules_by_path()
    paths = set(config._field_paths())
    assert set(rules) <= paths
    assert {"model.g.dropout", "model.d.dropout", "g_optim.beta1", "d_optim.beta1"} <= set(rules)
    assert rules["model.d.norm"].by[0] == "model.d.arch" and rules["model.g.hidden"].effect.on == "model.g.arch"
    for rule in rules.values():
        assert rule.effect is None or rule.effect.on in paths | {""}
        assert rule.by is None or rule.by[0] in paths
    # data.n and eval.n are two fields with two rules, no longer one entry for every field called "n"
    assert rules["data.n"] != rules["eval.n"]
    assert config.apply_overrides(Config(), ["data.n=0"]).data.n == 0  # 0 = the dataset's default size
    with pytest.raises(ConfigError, match=r"^eval.n: must be positive, got 0$"):
        config.apply_overrides(Config(), ["eval.n=0"])


def test_a_rule_for_no_field_is_a_programming_error(monkeypatch):
    monkeypatch.setitem(config.RULES, "train.bogus", config.Rule(lo=0))
    config._rules_by_path.cache_clear()
    try:
        with pytest.raises(TypeError, match=r"RULES\['train.bogus'\] matches no config field"):
            config._rules_by_path()
    finally:
        monkeypatch.undo()
        config._rules_by_path.cache_clear()


def test_cross_checks_see_the_result_of_all_overrides():
    """apply_overrides validates once, after the last item: order between related items does not matter."""
    a = config.apply_overrides(Config(), ["model.pack=3", "train.batch_size=63"])
    b = config.apply_overrides(Config(), ["train.batch_size=63", "model.pack=3"])
    assert a == b and (a.model.pack, a.train.batch_size) == (3, 63)
    cfg = config.apply_overrides(Config(), ["loss.aux_weight=2", "model.conditional='acgan'"])
    assert cfg.loss.aux_weight == 2.0


def test_a_run_loads_and_resumes_after_its_preset_changed(tmp_path, monkeypatch):
    """A run made with gaussian-1d and its penalty off keeps the preset's gamma 3.0 (no effect, not the user's
    choice). When a later ganforge ships the preset with another gamma, the saved 3.0 looked like the user's own
    choice and loading or resuming the run was refused."""
    import ganforge
    from ganforge import train
    from tests.conftest import TINY_1D

    cfg = config.apply_overrides(config.load_preset("gaussian-1d"), TINY_1D + [
        "loss.regularizer='none'", "train.steps=4", "train.ckpt_every=2", "train.tensorboard=false",
        f'train.out="{tmp_path / "run"}"'])
    train.train(cfg)
    changed = config.load_preset("gaussian-1d")
    changed.loss.gamma = 5.0
    original = config._preset_config
    monkeypatch.setattr(config, "_preset_config", lambda name: changed if name == "gaussian-1d" else original(name))
    with pytest.raises(config.ConfigError, match="loss.gamma: 3.0 has no effect"):  # a new config is still checked
        config.apply_overrides(config.load_preset("gaussian-1d"), ["loss.regularizer='none'", "loss.gamma=3.0"])
    assert ganforge.load(tmp_path / "run").cfg.loss.gamma == 3.0
    run = train.resume(tmp_path / "run", ["train.steps=6"])
    assert run.cfg.loss.gamma == 3.0
    train.train(run=run)
    assert run.step == 6
    with pytest.raises(config.ConfigError, match="loss.gamma: 7.0 has no effect"):  # the user's own, on resume
        train.resume(tmp_path / "run", ["loss.gamma=7.0"])


def test_max_epochs_cuts_a_long_run_on_small_data_and_its_likelihood_phase_in_proportion():
    cfg = config.apply_overrides(config.load_preset("text"), [])
    assert (cfg.train.steps, cfg.train.mle_steps, cfg.train.max_epochs) == (28000, 20000, 80)
    # the census surnames' 70,366 training lines: 80 passes are 87,920 steps, so the preset runs as written
    assert (config.total_steps(cfg, 70_366), config.mle_steps(cfg, 70_366)) == (28000, 20000)
    # 4,800 lines: 75 batches a pass, 80 passes = 6,000 steps; the likelihood phase keeps its 5/7
    assert (config.total_steps(cfg, 4_800), config.mle_steps(cfg, 4_800)) == (6000, 4286)
    free = config.apply_overrides(cfg, ["train.max_epochs=0"])
    assert (config.total_steps(free, 4_800), config.mle_steps(free, 4_800)) == (28000, 20000)
    by_epochs = config.apply_overrides(cfg, ["train.steps=0", "train.epochs=100", "train.mle_steps=5000"])
    assert (config.total_steps(by_epochs, 4_800), config.mle_steps(by_epochs, 4_800)) == (6000, 4000)  # of 7,500
