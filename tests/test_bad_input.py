"""Bad input, systematically: every invalid config value or CLI argument is one line naming it, exit 2.

The first half pins each known case to its message; the second half generates inputs with hypothesis
(config keys and values of every type, CLI arguments) and checks that none gets past as a traceback.
"""

from __future__ import annotations

import errno
import json
import math
import pathlib
import string
from collections import Counter
from types import SimpleNamespace

import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ganforge import cli, config, losses, regularizers, train
from ganforge.config import Config, ConfigError
from ganforge.models import build_generator
from ganforge.models.layers import activation, norm_1d
from ganforge.models.mlp import mlp_stack
from tests.conftest import TINY_1D

FLOAT_PATHS = [p for p in config._field_paths() if isinstance(config._get(Config(), p), float)]


def _error(items: list[str], base: Config | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        config.apply_overrides(base or Config(), items)
    return str(info.value)


# --------------------------------------------------------------------------------------------------
# Numbers: finite, in range, within sane limits


@pytest.mark.parametrize("path", FLOAT_PATHS)
@pytest.mark.parametrize("text, shown", [("nan", "nan"), ("inf", "inf"), ("-inf", "-inf"), ("1" + "0" * 400, None)])
def test_every_float_must_be_finite(path, text, shown):
    message = _error([f"{path}={text}"])
    shown = shown or config._show(10**400)
    assert message == f"{path}: must be a finite number, got {shown}"


def test_nan_is_not_blamed_on_anything_else():
    assert _error(["g_optim.lr=nan"]) == "g_optim.lr: must be a finite number, got nan"
    assert _error(["model.ema=nan"]) == "model.ema: must be a finite number, got nan"  # nan < 0 and nan >= 1: False
    assert _error(["train.epochs=inf"]) == "train.epochs: must be a finite number, got inf"


@pytest.mark.parametrize("item, message", [
    ("g_optim.beta1=1.0", "g_optim.beta1: must be in [0, 1), got 1.0"),
    ("d_optim.beta2=-0.1", "d_optim.beta2: must be in [0, 1), got -0.1"),
    ("d_optim.beta2=1.5", "d_optim.beta2: must be in [0, 1), got 1.5"),
    ("g_optim.weight_decay=-1e-4", "g_optim.weight_decay: must be zero or positive, got -0.0001"),
    ("d_optim.lr=-1", "d_optim.lr: must be zero or positive, got -1.0"),
])
def test_adam_options_are_config_errors(item, message):
    assert _error([item]) == message


def test_every_accepted_optimizer_setting_builds_adam():
    """The config's limits are at least as strict as Adam's own, so Adam never raises at start-up."""
    for o in ("lr=0", "beta1=0", "beta2=0.999999", "weight_decay=0", "lr=1e300"):
        cfg = config.apply_overrides(Config(), [f"g_optim.{o}"])
        g = cfg.g_optim
        torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=g.lr, betas=(g.beta1, g.beta2),
                         weight_decay=g.weight_decay)


@pytest.mark.parametrize("item, message", [
    ("train.seed=-1", "train.seed: must be zero or positive, got -1"),
    (f"train.seed={2**63}", f"train.seed: must be below 2**63, got {2**63}"),
    (f"train.batch_size={10**12}", f"train.batch_size: must be at most 16777216, got {10**12}"),
    (f"model.z_dim={10**9}", f"model.z_dim: must be at most 65536, got {10**9}"),
    (f"train.num_samples={10**9}", f"train.num_samples: must be at most 65536, got {10**9}"),
    (f"train.steps={2**41}", f"train.steps: must be at most 1099511627776, got {2**41}"),
    ("train.epochs=1e7", "train.epochs: must be at most 1000000, got 10000000.0"),
    (f"eval.n={2**21}", f"eval.n: must be at most 1048576, got {2**21}"),
    (f"data.n={10**12}", f"data.n: must be at most 134217728, got {10**12}"),
    (f"model.g.hidden=[16, {10**6}]", f"model.g.hidden[1]: must be at most 65536, got {10**6}"),
    (f"train.log_every={2**64}", f"train.log_every: must be below 2**63, got {2**64}"),
    ("train.seed=1e300", "train.seed: must be below 2**63, got " + config._show(int(1e300))),
    ("train.steps=" + "9" * 5000, "'train.steps': a number of 5000 characters is too long"),
])
def test_huge_and_negative_integers(item, message):
    assert _error([item]) == message


def test_the_largest_accepted_values_are_accepted():
    cfg = config.apply_overrides(Config(), [f"train.seed={2**63 - 1}", f"train.batch_size={2**24}",
                                            f"model.z_dim={2**16}", f"train.steps={2**40}"])
    assert (cfg.train.seed, cfg.train.batch_size, cfg.model.z_dim) == (2**63 - 1, 2**24, 2**16)
    torch.Generator().manual_seed(cfg.train.seed + 1)  # the run's fixed-noise generator takes seed + 1


@pytest.mark.parametrize("items, message", [
    (["model.g.hidden=[0]"], "model.g.hidden[0]: must be positive, got 0"),
    (["model.d.hidden=[64, -3]"], "model.d.hidden[1]: must be positive, got -3"),
    (["model.g.arch='dcgan'", "model.g.hidden=[256, 256]", "model.g.channels=0"],
     "model.g.channels: must be positive, got 0"),
    (["model.d.arch='dcgan'", "model.d.fc=[0]"], "model.d.fc[0]: must be positive, got 0"),
    (["model.g.arch='dcgan'", "model.g.blocks=-1"], "model.g.blocks: must be zero or positive, got -1"),
])
def test_widths_must_be_positive(items, message):
    assert _error(items) == message


def test_an_empty_hidden_list_is_a_linear_net():
    cfg = config.apply_overrides(Config(), ["model.g.hidden=[]", "model.d.hidden=[]", "model.z_dim=3"])
    G = build_generator(cfg.model, (2,), images=False)
    assert [type(m) for m in G.modules()] == [type(G), torch.nn.Sequential, torch.nn.Linear]
    assert G(torch.zeros(5, 3)).shape == (5, 2)


def test_nets_built_in_code_raise_config_errors():
    net = config.NetConfig(hidden=[8, 0])
    with pytest.raises(ConfigError, match=r"^hidden: every width must be positive, got \[8, 0\]$"):
        mlp_stack(net, 4)
    with pytest.raises(ConfigError, match=r"^norm: 'instance' is not one of none, batch, layer \('instance' applies"):
        norm_1d("instance", 4)
    with pytest.raises(ConfigError, match=r"^activation: 'relu6' is not one of relu, leaky_relu, elu, gelu, silu"):
        activation(config.NetConfig(activation="relu6"))


# --------------------------------------------------------------------------------------------------
# Strings: devices, choices by architecture, control characters


@pytest.mark.parametrize("device", ["cpu", "cuda", "cuda:0", "cuda:13", "mps", "auto"])
def test_devices_that_parse(device):
    assert config.apply_overrides(Config(), [f"train.device='{device}'"]).train.device == device


@pytest.mark.parametrize("device", ["foo", "CPU", "cuda:", "cuda:x", "cuda:-1", "gpu", "", "cpu ", "meta"])
def test_devices_that_do_not(device):
    message = f"train.device: {device!r} is not a device (cpu, cuda, cuda:N, mps or auto)"
    assert _error([f"train.device='{device}'"]) == message


def test_choices_are_checked_by_the_architecture_that_uses_them():
    assert _error(["model.g.norm='instance'"]) == ("model.g.norm: 'instance' applies to dcgan nets only "
                                                   "(model.g.arch = 'mlp' takes none, batch, layer)")
    # a preset's norm that the chosen arch cannot take names the arch the user chose (found by the fuzz test)
    assert _error(["model.g.arch='ctgan'"], config.load_preset("mnist-cgan")) == (
        "model.g.norm: 'batch' applies to mlp and dcgan nets only (model.g.arch = 'ctgan' takes none)")
    # the order of the overrides does not matter: the arch may come after the norm
    cfg = config.apply_overrides(Config(), ["model.g.norm='instance'", "model.g.arch='dcgan'"])
    assert (cfg.model.g.norm, cfg.model.g.arch) == ("instance", "dcgan")
    assert _error(["model.d.norm='group'"]) == "model.d.norm: 'group' is not one of none, batch, layer, instance"


def test_choices_come_from_the_registries(monkeypatch):
    """A loss or penalty added to its registry is a valid config value without touching config.py."""
    monkeypatch.setitem(losses.LOSSES, "mine", losses.LOSSES["bce"])
    monkeypatch.setitem(regularizers.REGULARIZERS, "r3", regularizers.REGULARIZERS["r1"])
    cfg = config.apply_overrides(Config(), ["loss.name='mine'", "loss.regularizer='r3'", "loss.gamma=2"])
    assert (cfg.loss.name, cfg.loss.regularizer) == ("mine", "r3")
    assert _error(["loss.name='yours'"]) == "loss.name: 'yours' is not one of bce, minimax, lsgan, hinge, wgan, " \
                                            "ragan, mine"


@pytest.mark.parametrize("item, shown", [
    ('train.out="runs/a\\nb"', "'runs/a\\nb'"),
    ('data.path="x\\u0000.npy"', "'x\\x00.npy'"),
    ('data.root="\\tcache"', "'\\tcache'"),
    ('model.g.activation="re\\nlu"', "'re\\nlu'"),
])
def test_control_characters_are_refused(item, shown):
    message = _error([item])
    assert message == f"{item.split('=')[0]}: {shown} holds a control character (newline, tab, NUL, ...)"
    assert len(message.splitlines()) == 1


def test_config_built_in_code_is_checked_too():
    cfg = Config()
    cfg.g_optim.lr = float("nan")
    with pytest.raises(ConfigError, match=r"^g_optim.lr: must be a finite number, got nan$"):
        config.validate(cfg)


def test_bad_toml_files(tmp_path):
    binary = tmp_path / "b.toml"
    binary.write_bytes(b"\xff\xfe\x00junk")
    with pytest.raises(ConfigError, match=r"b.toml: not a TOML file \(not UTF-8 text\)$"):
        config.load_toml(binary)
    huge = tmp_path / "h.toml"
    huge.write_text("[train]\nsteps = " + "9" * 5000 + "\n")
    with pytest.raises(ConfigError, match=r"h.toml: not valid TOML: Exceeds the limit \(4300 digits\)"):
        config.load_toml(huge)
    with pytest.raises(ConfigError, match=r"^unknown preset 'a\\nb' \((did you mean|presets: )"):
        config.load_preset("a\nb")


# --------------------------------------------------------------------------------------------------
# Values with no effect: an error when the user changed them


@pytest.mark.parametrize("items, message", [
    (["loss.name='hinge'", "loss.label_smoothing=0.1"],
     "loss.label_smoothing: 0.1 has no effect with loss.name = 'hinge' (it applies to bce, minimax, lsgan, ragan)"),
    (["loss.label_smoothing=0.1", "loss.name='wgan'"],  # either order
     "loss.label_smoothing: 0.1 has no effect with loss.name = 'wgan' (it applies to bce, minimax, lsgan, ragan)"),
    (["loss.lsgan_b=0.9"], "loss.lsgan_b: 0.9 has no effect with loss.name = 'bce' (it applies to lsgan)"),
    (["loss.gamma=1"], "loss.gamma: 1.0 has no effect with loss.regularizer = 'none' (it applies to r1, r2, wgan-gp)"),
    (["loss.reg_every=4"], "loss.reg_every: 4 has no effect with loss.regularizer = 'none' (it applies to r1, r2, "
                           "wgan-gp)"),
    (["loss.aux_weight=2"], "loss.aux_weight: 2.0 has no effect with model.conditional = 'none' (it applies to acgan)"),
    (["loss.aux_fake=true"], "loss.aux_fake: True has no effect with model.conditional = 'none' (it applies to acgan)"),
    (["model.ema_start=100"], "model.ema_start: 100 has no effect with model.ema = 0.0 (it applies when model.ema "
                              "> 0)"),
    (["model.latent_std=0.5"], "model.latent_std: 0.5 has no effect with model.latent_components = 0 (it applies "
                               "when model.latent_components > 0)"),
    (["train.instance_noise_steps=10"], "train.instance_noise_steps: 10 has no effect with train.instance_noise = 0.0 "
                                        "(it applies when train.instance_noise > 0)"),
    (["train.lr_decay_start=0.5"], "train.lr_decay_start: 0.5 has no effect with train.lr_decay = 'none' (it applies "
                                   "to linear, cosine)"),
    (["model.g.leaky_slope=0.1"], "model.g.leaky_slope: 0.1 has no effect with model.g.activation = 'relu' (it "
                                  "applies to leaky_relu)"),
    (["model.d.arch='dcgan'", "model.d.hidden=[64]"],
     "model.d.hidden: [64] has no effect with model.d.arch = 'dcgan' (it applies to mlp, ctgan)"),
    (["model.g.channels=32"],
     "model.g.channels: 32 has no effect with model.g.arch = 'mlp' (it applies to dcgan, textcnn, textrnn)"),
    (["model.d.fc=[128]"], "model.d.fc: [128] has no effect with model.d.arch = 'mlp' (it applies to dcgan)"),
    (["model.g.minibatch='stddev'"], "model.g.minibatch: 'stddev' has no effect on G: minibatch layers are D's "
                                     "(model.d.minibatch)"),
    (["eval.best='w1'"], "eval.best: 'w1' has no effect with eval.every = 0 (it applies when eval.every > 0)"),
    (["eval.n=500"], "eval.n: 500 has no effect with eval.every = 0 (it applies when eval.every > 0)"),
])
def test_a_changed_value_without_effect_is_an_error(items, message):
    assert _error(items) == message


def test_values_with_effect_and_untouched_values_pass():
    for name in config.SMOOTHED_LOSSES:
        config.apply_overrides(Config(), [f"loss.name='{name}'", "loss.label_smoothing=0.1"])
    config.apply_overrides(Config(), ["loss.name='hinge'"])  # label_smoothing left at its default
    config.apply_overrides(Config(), ["loss.regularizer='r1'", "loss.gamma=1", "eval.every=100", "eval.best='w1'"])
    config.apply_overrides(Config(), ["model.g.arch='dcgan'"])  # hidden keeps its default: not the user's doing
    # a preset's own values are not the user's either: switching the preset's penalty off leaves its gamma unused
    cfg = config.apply_overrides(config.load_preset("gaussian-1d"), ["loss.regularizer='none'", "model.ema=0"])
    assert (cfg.loss.gamma, cfg.loss.regularizer) == (3.0, "none")
    assert _error(["loss.regularizer='none'", "loss.gamma=5"], config.load_preset("gaussian-1d")).startswith(
        "loss.gamma: 5.0 has no effect")
    # a saved config names its preset and holds every value: it loads as it was saved
    for name in config.presets():
        saved = config.to_dict(config.load_preset(name))
        assert config.from_dict(saved) == config.load_preset(name)


def test_smoothed_losses_are_the_ones_whose_d_loss_reads_the_smoothing():
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(16, generator=g), torch.randn(16, generator=g)
    reads = {name for name, loss in losses.LOSSES.items()
             if not torch.equal(loss.d(real, fake, 0.0), loss.d(real, fake, 0.3))}
    assert reads == set(config.SMOOTHED_LOSSES)


# --------------------------------------------------------------------------------------------------
# The CLI: one line, exit 2 (or 130 on Ctrl-C), never a traceback


def _run_cli(argv: list[str], capsys) -> tuple[int, str]:
    """main(argv)'s exit status (argparse's SystemExit included) and its stderr."""
    try:
        code = cli.main(argv)
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err


def _one_line(err: str) -> bool:
    return err.endswith("\n") and len(err.splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize("argv, message", [
    (["train", "--steps", "abc"], "ganforge train: error: argument --steps: invalid int value: 'abc' "
                                  "(see ganforge train --help)"),
    (["trian"], "ganforge: error: argument command: invalid choice: 'trian' (choose from"),
    (["sample", "run"], "ganforge sample: error: the following arguments are required: --out"),
    (["train", "--device", "foo"], "ganforge train: error: train.device: 'foo' is not a device (cpu, cuda, cuda:N, "
                                   "mps or auto)"),
    (["train", "--epochs", "nan"], "ganforge train: error: --epochs must be a finite number, got nan"),
    (["train", "--seed", "-1"], "ganforge train: error: --seed must be zero or positive, got -1"),
    (["train", "--seed", str(2**63)], f"ganforge train: error: --seed must be below 2**63, got {2**63}"),
    (["train", "--batch-size", str(10**12)], "ganforge train: error: train.batch_size: must be at most 16777216"),
    (["train", "--set", "model.g.norm='instance'"], "ganforge train: error: model.g.norm: 'instance' applies to "
                                                    "dcgan nets only (model.g.arch = 'mlp' takes none, batch, layer)"),
    (["train", "--set", "g_optim.beta1=1"], "ganforge train: error: g_optim.beta1: must be in [0, 1), got 1.0"),
    (["train", "--set", 'train.out="a\\nb"'], "ganforge train: error: train.out: 'a\\nb' holds a control character"),
    (["train", "--preset", "a\nb"], "ganforge train: error: unknown preset 'a\\nb'"),
    (["sample", "nowhere", "-n", str(10**12), "--out", "x.npy"],
     f"ganforge sample: error: -n must be at most 1048576, got {10**12}"),
    (["sample", "nowhere", "--seed", str(2**64), "--out", "x.npy"],
     f"ganforge sample: error: --seed must be below 2**63, got {2**64}"),
    (["eval", "nowhere", "-n", str(2**21)], f"ganforge eval: error: -n must be at most 1048576, got {2**21}"),
    (["eval", "nowhere", "--seed", "-5"], "ganforge eval: error: --seed must be zero or positive, got -5"),
    (["interpolate", "nowhere", "--out", "w.gif", "--frames", str(10**11)],
     f"ganforge interpolate: error: --frames must be at most 65536, got {10**11}"),
    (["interpolate", "nowhere", "--out", "w.gif", "--fps", "inf"],
     "ganforge interpolate: error: --fps must be a finite number, got inf"),
    (["sample", "nowhere", "--truncation", "nan", "--out", "x.npy"],
     "ganforge sample: error: --truncation must be a finite number, got nan"),
    (["sample", "nowhere", "--truncation", "1e-300", "--out", "x.npy"],
     "ganforge sample: error: --truncation must be at least 0.01 (smaller values make one sample), got 1e-300"),
])
def test_cli_arguments_fail_in_one_line(capsys, argv, message):
    code, err = _run_cli(argv, capsys)
    assert code == 2 and err.startswith(message) and _one_line(err), err


def test_ctrl_c_during_start_up_is_one_line(capsys, monkeypatch):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train, "build", interrupt)
    assert _run_cli(["train", *_sets(TINY_1D)], capsys) == (130, "interrupted\n")
    monkeypatch.setattr(config, "load_preset", interrupt)
    assert _run_cli(["train", "--preset", "gaussian-1d"], capsys) == (130, "interrupted\n")
    monkeypatch.setattr(cli, "build_parser", interrupt)  # Ctrl-C while torch is still being imported
    assert _run_cli(["presets"], capsys) == (130, "interrupted\n")


def test_ctrl_c_during_training_keeps_the_checkpoint_message(capsys, monkeypatch, tmp_path):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train, "_loop", interrupt)
    code, err = _run_cli(["train", *_sets(TINY_1D), "--out", str(tmp_path / "r")], capsys)
    assert (code, err) == (130, "\ninterrupted: the last checkpoint written is kept\n")


def _sets(items: list[str]) -> list[str]:
    return [a for item in items for a in ("--set", item)] + ["--set", "train.tensorboard=false",
                                                             "--set", "train.animation=false"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> pathlib.Path:
    """A tiny trained 1D run to sample, evaluate, export and report on."""
    out = tmp_path_factory.mktemp("bad_input") / "run"
    cfg = config.apply_overrides(Config(), [*TINY_1D, "train.steps=4", "train.tensorboard=false",
                                            "train.animation=false", "train.doctor=false", f"train.out='{out}'"])
    train.train(cfg=cfg)
    return out


def test_an_out_below_a_file_is_one_line(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, err = _run_cli(["train", *_sets(TINY_1D), "--out", str(blocker / "run")], capsys)
    assert code == 2 and err == f"ganforge train: error: {blocker / 'run'}: Not a directory\n"


@pytest.mark.parametrize("command", ["train", "export", "report", "eval", "sample", "interpolate"])
@pytest.mark.parametrize("code, reason", [(errno.EACCES, "Permission denied"), (errno.EROFS, "Read-only file system"),
                                          (errno.ENOSPC, "No space left on device")])
def test_unwritable_outputs_are_one_line(capsys, monkeypatch, tmp_path, run_dir, command, code, reason):
    """A read-only, full or forbidden --out (simulated: the tests may run as root) names the path, exit 2."""
    ro = tmp_path / "ro"
    real_mkdir = pathlib.Path.mkdir

    def mkdir(self, *args, **kwargs):
        if str(self).startswith(str(ro)):
            raise OSError(code, reason, str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "mkdir", mkdir)
    out = ro / "deep" / "x"
    argv = {"train": ["train", *_sets(TINY_1D), "--out", str(out)],
            "export": ["export", str(run_dir), "--out", str(out / "G.safetensors")],
            "report": ["report", str(run_dir), "--out", str(out / "report.html")],
            "eval": ["eval", str(run_dir), "-n", "50", "--out", str(out / "e.json")],
            "sample": ["sample", str(run_dir), "-n", "5", "--out", str(out / "s.npy")],
            "interpolate": ["interpolate", str(run_dir), "--frames", "1", "--out", str(out / "w.gif")]}[command]
    status, err = _run_cli(argv, capsys)
    assert status == 2 and _one_line(err) and str(ro) in err and reason in err, err


def test_other_os_errors_are_not_hidden(monkeypatch, tmp_path):
    """An I/O error is not the user's mistake: it keeps its traceback."""
    def broken(self, *args, **kwargs):
        raise OSError(errno.EIO, "Input/output error", str(self))

    monkeypatch.setattr(pathlib.Path, "mkdir", broken)
    with pytest.raises(OSError, match="Input/output error"):
        cli.main(["train", *_sets(TINY_1D), "--out", str(tmp_path / "r")])


# --------------------------------------------------------------------------------------------------
# Property tests: generated keys and values, generated command lines

FIELD_PATHS = config._field_paths()
SECTIONS = sorted({p.rsplit(".", 1)[0] for p in FIELD_PATHS if "." in p})
NAME_CHARS = string.ascii_lowercase + "_.-"


def _mutations(path: str) -> st.SearchStrategy[str]:
    """Typos of a key: a character dropped, doubled or changed, a part swapped, a section alone."""
    return st.one_of(
        st.integers(0, len(path) - 1).map(lambda i: path[:i] + path[i + 1:]),
        st.integers(0, len(path) - 1).map(lambda i: path[:i] + path[i] + path[i:]),
        st.tuples(st.integers(0, len(path) - 1), st.sampled_from(NAME_CHARS)).map(
            lambda t: path[:t[0]] + t[1] + path[t[0] + 1:]),
        st.sampled_from(SECTIONS).map(lambda s: s + "." + path.rsplit(".", 1)[-1]),
        st.just(path + ".extra"),
        st.just(path.upper()),
    )


KEYS = st.one_of(
    st.sampled_from(FIELD_PATHS),
    st.sampled_from(FIELD_PATHS).flatmap(_mutations),
    st.sampled_from(SECTIONS),
    st.text(alphabet=NAME_CHARS + "'\" \\\n\t", max_size=30),
)
SCALARS = st.one_of(
    st.integers(-10, 300), st.integers(-(2**70), 2**70),
    st.sampled_from([2**63 - 1, 2**63, -(2**63), 2**24, 2**24 + 1]),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, 1.0, -0.0, 0.5, 1e300, 1e-320]),
    st.booleans(), st.text(max_size=20), st.sampled_from(["relu", "instance", "dcgan", "hinge", "cuda:1", "fid"]),
)
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                      st.dictionaries(st.sampled_from(["a", "n", "lr", "hidden",
                                                                                       "steps", "name"]), inner,
                                                                      max_size=3)), max_leaves=8)


def _typed(path: str) -> st.SearchStrategy:
    """Values of the field's own type, often in range and from its registry: the inputs that often build."""
    hints = Config
    for part in path.split("."):
        typ = config.typing.get_type_hints(hints)[part]
        hints = typ
    default = config._get(Config(), path)
    if typ is bool:
        return st.booleans()
    if typ is int:
        return st.one_of(st.just(default), st.integers(0, 64), st.integers(-(2**70), 2**70))
    if typ is float:
        return st.one_of(st.just(default), st.floats(0, 1, exclude_max=True), st.floats(allow_nan=True,
                                                                                       allow_infinity=True))
    if typ is str:
        rule = config._rules_by_path().get(path)
        names = tuple(rule.choices()) if rule and rule.choices else ("",)
        return st.one_of(st.just(default), st.sampled_from(names), st.sampled_from(NAMES), st.text(max_size=10))
    if typ == list[int]:
        return st.lists(st.one_of(st.integers(1, 64), st.integers(-2**40, 2**40)), max_size=3)
    return st.lists(st.sampled_from(["fid", "w1", "kid", "modes", "fdi", ""]), max_size=2)  # list[str]


NAMES = ["relu", "instance", "dcgan", "mlp", "hinge", "lsgan", "r1", "cuda:1", "auto", "fid", "w1", "gaussian-1d",
         "acgan", "stddev", "bf16", "linear", "color", "none", "batch", "3", "ring-8", "mnist-5k"]
TYPED = st.sampled_from(FIELD_PATHS).flatmap(lambda p: st.tuples(st.just(p), _typed(p)))
PAIRS = st.one_of(TYPED, TYPED, st.tuples(KEYS, VALUES))  # two typed draws in three


def _toml(value) -> str:
    """`value` as a TOML inline value (the right-hand side of --set key=...)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}"
    return str(value)


def _named(key: str) -> str:
    """The part of `key` an error must name: up to its first unknown part, or to the value it reaches."""
    parts, cls = key.strip().split("."), Config
    for i, part in enumerate(parts):
        fields = {f.name for f in config.dataclasses.fields(cls)}
        if part not in fields:
            return ".".join(parts[: i + 1])
        typ = config.typing.get_type_hints(cls)[part]
        if not config.dataclasses.is_dataclass(typ):  # a value: any deeper parts are a table it cannot take
            return ".".join(parts[: i + 1])
        cls = typ
    return ".".join(parts)


def _check_outcome(make, keys: list[str], counts: Counter) -> None:
    """`make()` builds a Config, or raises a ConfigError of one line that names one of `keys`."""
    counts["tried"] += 1
    try:
        cfg = make()
    except ConfigError as e:
        message = str(e)
        assert len(message.splitlines()) == 1 and message.isprintable(), message
        named = [config._show(_named(k))[1:-1] for k in keys]
        assert any(n in message for n in named) or "preset" in keys, (keys, message)
        counts["error"] += 1
    else:
        assert config.from_dict(config.tomllib.loads(config.dump_toml(cfg))) == cfg  # what a run saves, it loads
        counts["ok"] += 1
    counts["handled"] += 1


BASES = {"defaults": Config(), "gaussian-1d": config.load_preset("gaussian-1d"), "ring-8": config.load_preset("ring-8"),
         "mnist-cgan": config.load_preset("mnist-cgan")}


def _report(what: str, counts: Counter) -> None:
    print(f"\n{what}: {counts['handled']}/{counts['tried']} handled ({counts['ok']} built or ran, "
          f"{counts['error']} one-line errors)")


def test_generated_overrides_build_or_fail_in_one_line():
    """1-3 --set items (known keys with values of their type, typos, junk) on the defaults or a preset."""
    counts: Counter = Counter()

    @settings(max_examples=300, deadline=None, database=None)
    @given(base=st.sampled_from(sorted(BASES)), pairs=st.lists(PAIRS, min_size=1, max_size=3))
    def check(base, pairs):
        items = [f"{k}={_toml(v)}" for k, v in pairs]
        _check_outcome(lambda: config.apply_overrides(BASES[base], items), [k for k, _ in pairs], counts)

    check()
    _report("config overrides", counts)
    assert counts["handled"] == counts["tried"] > 0 and counts["ok"] and counts["error"]


def test_generated_raw_override_text_builds_or_fails_in_one_line():
    """Anything after '=': what is not TOML becomes a string, which must then fit the field."""
    counts: Counter = Counter()

    @settings(max_examples=200, deadline=None, database=None)
    @given(key=st.sampled_from(FIELD_PATHS), raw=st.one_of(st.text(max_size=25), st.sampled_from(NAMES)))
    def check(key, raw):
        _check_outcome(lambda: config.apply_overrides(Config(), [f"{key}={raw}"]), [key], counts)

    check()
    _report("raw override text", counts)
    assert counts["handled"] == counts["tried"] > 0 and counts["ok"] and counts["error"]


def test_generated_nested_tables_build_or_fail_in_one_line():
    """Whole tables (a TOML file's shape): several keys at once, values of every type, unknown keys."""
    counts: Counter = Counter()

    @settings(max_examples=200, deadline=None, database=None)
    @given(pairs=st.lists(PAIRS, min_size=1, max_size=4))
    def check(pairs):
        data: dict = {}
        for key, value in pairs:
            node, parts = data, key.strip().split(".")
            for part in parts[:-1]:
                node = node.setdefault(part, {}) if isinstance(node.get(part, {}), dict) else {}
            node[parts[-1]] = value
        _check_outcome(lambda: config.from_dict(data), [k for k, _ in pairs], counts)

    check()
    _report("nested tables", counts)
    assert counts["handled"] == counts["tried"] > 0 and counts["ok"] and counts["error"]


NUMBERS = st.one_of(st.integers(-5, 300).map(str), st.integers(-(2**80), 2**80).map(str),
                    st.floats(allow_nan=True, allow_infinity=True).map(repr), st.sampled_from(["nan", "inf", "-inf",
                    "1e400", "10**12", "0x10", "", " ", "1_000", "--", "٣"]), st.text(max_size=8))
ARG_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20)
TRAIN_FLAGS = st.one_of(
    st.tuples(st.sampled_from(["--steps", "--batch-size", "--seed", "--epochs"]), NUMBERS),
    st.tuples(st.just("--device"), st.one_of(st.sampled_from(["cpu", "cuda", "cuda:1", "mps", "auto", "foo"]),
                                             ARG_TEXT)),
    st.tuples(st.just("--preset"), st.one_of(st.sampled_from(config.presets()), ARG_TEXT)),
    st.tuples(st.sampled_from(["--loss", "--precision", "--progress", "--out"]), ARG_TEXT),
    st.tuples(st.just("--set"), PAIRS.map(lambda kv: f"{kv[0]}={_toml(kv[1])}")),
    st.tuples(st.just("--set"), ARG_TEXT),
)


def test_generated_train_command_lines(capsys, monkeypatch, tmp_path):
    """train with generated flags: exit 0 or 2, stderr empty or one line. Training itself is stubbed out
    after the config is built and validated, so no example starts a real run."""
    built = []

    def build(cfg, *args, **kwargs):
        config.validate(cfg)
        built.append(cfg)
        return SimpleNamespace(out=tmp_path / "never", data=SimpleNamespace(report=[]))

    monkeypatch.setattr(train, "build", build)
    monkeypatch.setattr(train, "train", lambda **kwargs: None)
    monkeypatch.setattr(train, "main_message", lambda run: "ok")
    counts: Counter = Counter()

    @settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
    @given(flags=st.lists(TRAIN_FLAGS, max_size=4))
    def check(flags):
        counts["tried"] += 1
        code, err = _run_cli(["train", *[a for pair in flags for a in pair]], capsys)
        assert (code, err) == (0, "") or (code == 2 and _one_line(err)), (flags, code, err)
        counts["ok" if code == 0 else "error"] += 1
        counts["handled"] += 1

    check()
    _report("train command lines", counts)
    assert counts["handled"] == counts["tried"] > 0 and len(built) == counts["ok"]


def test_generated_sample_and_eval_command_lines(capsys, run_dir, tmp_path):
    """sample / eval / interpolate of a real tiny run with generated numbers: output or one line, exit 2."""
    counts: Counter = Counter()
    # each flag: a valid value in three draws of four (valid sizes stay small: the examples really run),
    # else one out of range, too large, or not a number
    def mostly(valid, *invalid):
        return st.one_of(valid, valid, valid, st.one_of(*invalid))

    huge = st.integers(2**20 + 1, 2**90).map(str)
    junk = NUMBERS.filter(lambda t: not t.strip().lstrip("-").isdigit())
    sample_n = mostly(st.integers(1, 40).map(str), st.integers(-3, 0).map(str), huge, junk)
    eval_n = mostly(st.integers(10, 40).map(str), st.integers(-3, 9).map(str), huge, junk)
    seed = mostly(st.integers(0, 2**63 - 1).map(str), st.integers(-(2**70), -1).map(str),
                  st.integers(2**63, 2**70).map(str), junk)
    psi = mostly(st.floats(0.01, 1).map(repr), st.floats(allow_nan=True, allow_infinity=True).map(repr), junk)
    frames = mostly(st.integers(1, 2).map(str), st.integers(-2, 0).map(str), huge, junk)  # each frame is drawn
    # fps below 1 is left out: a GIF frame of a still walk can outlast GIF's 655 s (test_gif_frame_limit)
    fps = mostly(st.floats(1, 1000).map(repr), st.floats(min_value=1000, allow_infinity=True).map(repr),
                 st.floats(max_value=0, allow_infinity=True).map(repr),
                 st.sampled_from(["nan", "-inf", "1e400", "", "fast", "--", "0x10"]))
    seeds = mostly(st.sampled_from(["0-3", "1,5", "7,2"]), st.sampled_from(["3-1", "0-99999999999999999999", "7"]),
                   ARG_TEXT)
    command = st.one_of(
        st.tuples(st.just("sample"), st.fixed_dictionaries({"-n": sample_n}, optional={"--seed": seed,
                                                                                        "--truncation": psi})),
        st.tuples(st.just("eval"), st.fixed_dictionaries({"-n": eval_n}, optional={"--seed": seed})),
        st.tuples(st.just("interpolate"), st.fixed_dictionaries({"--frames": frames}, optional={
            "--fps": fps, "--seeds": seeds, "--truncation": psi})),
    )
    outs = {"sample": "s.npy", "eval": "e.json", "interpolate": "w.gif"}

    @settings(max_examples=120, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
    @given(cmd=command)
    @example(cmd=("sample", {"-n": "5", "--seed": "3", "--truncation": "0.5"}))
    @example(cmd=("eval", {"-n": "10", "--seed": str(2**63 - 1)}))
    @example(cmd=("interpolate", {"--frames": "1", "--fps": "20", "--seeds": "0-3", "--truncation": "1"}))
    def check(cmd):
        name, flags = cmd
        counts["tried"] += 1
        argv = [name, str(run_dir), "--out", str(tmp_path / outs[name])]
        for flag, value in flags.items():
            argv += [f"{flag}={value}"]  # '=' keeps values such as '-5' from reading as flags
        code, err = _run_cli(argv, capsys)
        assert code in (0, 2) and "Traceback" not in err, (argv, code, err)
        assert code == 0 or _one_line(err), (argv, err)
        counts["ok" if code == 0 else "error"] += 1
        counts["handled"] += 1

    check()
    _report("sample/eval/interpolate command lines", counts)
    assert counts["handled"] == counts["tried"] > 0 and counts["ok"] and counts["error"]


def test_gif_frame_limit(capsys, run_dir, tmp_path):
    """Pillow merges identical GIF frames and adds their delays, which overflowed GIF's 16-bit 1/100 s field
    (655 s) with a traceback."""
    argv = ["interpolate", str(run_dir), "--seeds", "0,1", "--frames", "1", "--fps", "0.001"]
    code, err = _run_cli([*argv, "--out", str(tmp_path / "w.gif")], capsys)
    assert code == 2 and _one_line(err) and "GIF frames last at most 655 s" in err
    assert not (tmp_path / "w.gif").exists()
