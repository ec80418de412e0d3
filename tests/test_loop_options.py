"""Every loss, preset and training option runs through the real loop: finite values, both networks change,
the right quantities logged. Tiny widths and a handful of steps each."""

from __future__ import annotations

import json

import pytest
import torch

from ganforge import config, train
from ganforge.cli import main
from ganforge.losses import LOSSES
from tests.conftest import TINY_1D, TINY_MNIST


def _run(base: list[str], tmp_path, extra: list[str], steps: int = 6):
    cfg = config.apply_overrides(config.Config(), base + [f"train.steps={steps}", "train.log_every=3",
                                                          f'train.out="{tmp_path / "run"}"', *extra])
    run = train.build(cfg)
    before = ([p.detach().clone() for p in run.G.parameters()], [p.detach().clone() for p in run.D.parameters()])
    train.train(run=run)
    recs = [json.loads(ln) for ln in (run.out / "metrics.jsonl").read_text().splitlines()]
    logs = [r for r in recs if "loss_d" in r]
    return run, before, logs


def _changed(before: list[torch.Tensor], module: torch.nn.Module) -> bool:
    return any(not torch.equal(a, b) for a, b in zip(before, module.parameters(), strict=True))


def _healthy(run, before, logs, steps: int = 6) -> None:
    assert [r["step"] for r in logs] == list(range(3, steps + 1, 3))
    for r in logs:
        for key in ("loss_d", "loss_g", "d_real", "d_fake", "grad_norm_d", "grad_norm_g", "lr_d", "lr_g"):
            assert key in r and r[key] is not None and torch.isfinite(torch.tensor(r[key])), (key, r)
    assert _changed(before[0], run.G) and _changed(before[1], run.D)


@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_every_loss_trains_in_the_loop(tmp_path, loss):
    extra = [f'loss.name="{loss}"']
    if loss == "wgan":  # WGAN-GP as the README says: critic penalty and five critic steps per G step
        extra += ['loss.regularizer="wgan-gp"', "train.d_steps=5"]
    run, before, logs = _run(TINY_1D, tmp_path, extra)
    _healthy(run, before, logs)
    if not LOSSES[loss].probability:  # critics' raw outputs are logged as they are
        assert any(abs(r["d_real"]) > 0 for r in logs)
    else:
        assert all(0 < r["d_real"] < 1 and 0 < r["d_fake"] < 1 for r in logs)


def test_ragan_generator_step_reads_real_data(tmp_path, monkeypatch):
    """RaGAN's G loss compares D(G(z)) with D(x): the G step must call D on the real batch too."""
    calls = []
    original = train.g_step

    def spy(run, r, std, real, y_real, grad_norm):
        calls.append(r.loss.needs_real_for_g)
        return original(run, r, std, real, y_real, grad_norm)

    monkeypatch.setattr(train, "g_step", spy)
    run, before, logs = _run(TINY_1D, tmp_path, ['loss.name="ragan"'])
    assert calls and all(calls)
    _healthy(run, before, logs)


@pytest.mark.parametrize("reg", ["r1", "r2", "wgan-gp"])
def test_penalties_and_lazy_weighting_in_the_loop(tmp_path, reg, monkeypatch):
    """The penalty enters the D loss as scale * gamma * k every k-th D step (lazy regularisation)."""
    from ganforge import regularizers

    seen = []
    fn = regularizers.REGULARIZERS[reg].fn

    def counting(*a, **kw):
        value = fn(*a, **kw)
        seen.append(float(value.detach()))
        return value

    monkeypatch.setitem(regularizers.REGULARIZERS, reg, regularizers.REGULARIZERS[reg]._replace(fn=counting))
    run, before, logs = _run(TINY_1D, tmp_path, [f'loss.regularizer="{reg}"', "loss.reg_every=2",
                                                  "train.d_steps=2", "loss.gamma=3"])
    assert len(seen) == 6  # 6 G steps x 2 D steps, every 2nd D step
    _healthy(run, before, logs)


@pytest.mark.parametrize("option", [
    ["train.d_steps=3"],
    ["train.instance_noise=0.5", "train.instance_noise_steps=4"],
    ["model.d.spectral_norm=true"],
    ['model.d.minibatch="discrimination"'],
    ['model.d.minibatch="stddev"'],
    ["model.ema=0.9", "model.ema_start=3"],
    ["model.pack=2"],
    ["model.latent_components=5"],
    ['train.lr_decay="cosine"'],
])
def test_training_options_run_in_the_loop(tmp_path, option):
    run, before, logs = _run(TINY_1D, tmp_path, option)
    _healthy(run, before, logs)


@pytest.mark.parametrize("mode", ["concat", "embed", "projection", "acgan"])
def test_conditional_modes_run_in_the_loop(tmp_path, mode):
    run, before, logs = _run(TINY_MNIST, tmp_path, [f'model.conditional="{mode}"'])
    _healthy(run, before, logs)


def test_ema_start_copies_until_then_averages(tmp_path):
    run, _, _ = _run(TINY_1D, tmp_path, ["model.ema=0.9", "model.ema_start=6"])  # ema starts after the run
    for a, b in zip(run.G.parameters(), run.G_ema.parameters(), strict=True):
        assert torch.equal(a, b)
    run, _, _ = _run(TINY_1D, tmp_path / "b", ["model.ema=0.9", "model.ema_start=2"])
    assert any(not torch.equal(a, b) for a, b in zip(run.G.parameters(), run.G_ema.parameters(), strict=True))


def test_bf16_autocast_computes_in_bf16(tmp_path):
    """bf16 is checked where it acts: the dtype of an activation inside G during training (weights stay fp32)."""
    cfg = config.apply_overrides(config.Config(), TINY_1D + ['train.precision="bf16"', "train.steps=2",
                                                             f'train.out="{tmp_path / "r"}"'])
    run = train.build(cfg)
    dtypes = []
    hook = run.G.body[0].register_forward_hook(lambda m, i, o: dtypes.append(o.dtype)) if hasattr(run.G, "body") \
        else next(m for m in run.G.modules() if isinstance(m, torch.nn.Linear)).register_forward_hook(
            lambda m, i, o: dtypes.append(o.dtype))
    train.train(run=run)
    hook.remove()
    # two steps, each running G in the D step and in the G step: bf16; then the picture, made in fp32
    assert dtypes[:4] == [torch.bfloat16] * 4 and dtypes[4:] == [torch.float32]
    assert all(p.dtype == torch.float32 for p in run.G.parameters())


@pytest.mark.parametrize("preset", config.presets())
def test_every_preset_loads_builds_and_trains_two_steps(tmp_path, preset):
    cfg = config.load_preset(preset)
    small = ["train.steps=2", "train.log_every=1", f'train.out="{tmp_path / "r"}"', 'train.progress="none"',
             "train.tensorboard=false", "train.hist_samples=200"]
    if cfg.data.name == "mnist":  # the full set downloads; its offline 5,000 are the same kind of data
        small += ['data.name="mnist-5k"']
    if cfg.data.name in ("mnist", "mnist-5k"):
        small += ["data.limit=600"]
    else:
        small += ["data.n=2000"]
    run = train.train(config.apply_overrides(cfg, small))
    assert run.step == 2 and (run.out / "checkpoint.safetensors").exists()


def test_presets_command_lists_every_preset(capsys):
    assert main(["presets"]) == 0
    assert capsys.readouterr().out.split() == config.presets() and "images" in config.presets()
