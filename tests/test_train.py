import json

import pytest
import torch

from ganforge import config, train
from ganforge.config import ConfigError


def test_one_step_changes_both_networks(tiny_1d):
    run = train.build(config.apply_overrides(tiny_1d, ["train.steps=1"]))
    before_g = [p.clone() for p in run.G.parameters()]
    before_d = [p.clone() for p in run.D.parameters()]
    train.train(run=run)
    assert all(not torch.equal(a, b) for a, b in zip(before_g, run.G.parameters(), strict=True))
    assert all(not torch.equal(a, b) for a, b in zip(before_d, run.D.parameters(), strict=True))


def test_run_folder_contents(tiny_mnist):
    run = train.train(tiny_mnist)
    names = sorted(p.name for p in (run.out / "samples").iterdir())
    assert names == ["step_000015.png", "step_000030.png"]
    lines = [json.loads(ln) for ln in (run.out / "metrics.jsonl").read_text().splitlines()]
    recs = [r for r in lines if "loss_d" in r]
    assert [r["step"] for r in recs] == [10, 20, 30]
    stats = [r for r in lines if "diversity" in r]  # sample diversity and classes at each picture
    assert [r["step"] for r in stats] == [15, 30] and sum(stats[0]["classes_produced"]) == 16
    assert {"loss_d", "loss_g", "d_real", "d_fake", "grad_norm_d", "grad_norm_g"} <= recs[0].keys()
    assert 0 < recs[-1]["d_real"] < 1 and 0 < recs[-1]["d_fake"] < 1
    assert config.load_toml(run.out / "config.toml") == run.cfg


class UserG(torch.nn.Module):
    """A user's generator following the interface of every ganforge G: forward(z, y=None)."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 1)

    def forward(self, z, y=None):
        return self.lin(z)


def test_user_modules_can_be_passed_in(tiny_1d):
    G = UserG()
    run = train.train(run=train.build(tiny_1d, G=G))
    assert run.G is G


def test_user_modules_must_follow_the_interface(tiny_1d):
    with pytest.raises(TypeError, match=r"^G: Sequential.forward\(input\) must take \(z, y=None\) and return "
                                        r"samples, the interface of every ganforge G"):
        train.build(tiny_1d, G=torch.nn.Sequential(torch.nn.Linear(4, 1)))
    with pytest.raises(TypeError, match=r"^D: Linear.forward\(input: torch.Tensor\) -> torch.Tensor must take "
                                        r"\(x, y=None\) and return \(logits, aux or None\)"):
        train.build(tiny_1d, D=torch.nn.Linear(1, 1))


@pytest.mark.parametrize("ema", [0.0, 0.9])
def test_resume_is_bit_identical(tmp_path, tiny_1d, ema):
    """2N steps in one go == N steps, stop, resume for N more (weights, EMA, optimizer state)."""
    base = config.apply_overrides(tiny_1d, [f"model.ema={ema}", "model.g.dropout=0.2", "train.ckpt_every=0"])
    full = train.train(config.apply_overrides(base, ["train.steps=40", f"train.out=\"{tmp_path / 'full'}\""]))
    train.train(config.apply_overrides(base, ["train.steps=20", f"train.out=\"{tmp_path / 'half'}\""]))
    torch.manual_seed(999)  # whatever happened in between must not matter
    resumed = train.train(run=train.resume(tmp_path / "half", ["train.steps=40"]))
    assert resumed.step == 40
    for a, b in [(full.G, resumed.G), (full.D, resumed.D)] + ([(full.G_ema, resumed.G_ema)] if ema else []):
        for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
            assert torch.equal(pa, pb), name
    recs = [json.loads(ln) for ln in (tmp_path / "half" / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in recs if "loss_d" in r]
    assert steps == [10, 20, 30, 40]


def test_bf16_precision_trains(tiny_1d):
    run = train.train(config.apply_overrides(tiny_1d, ["train.precision=\"bf16\"", "train.steps=5"]))
    assert all(p.dtype == torch.float32 for p in run.G.parameters())


def test_cuda_request_without_cuda_is_a_clear_error(tiny_1d):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(ConfigError, match="train.device: 'cuda' requested but CUDA is not available"):
        train.build(config.apply_overrides(tiny_1d, ["train.device=\"cuda\""]))


def test_divergence_stops_cleanly(tiny_1d):
    run = train.build(config.apply_overrides(tiny_1d, ["train.ckpt_every=10"]))
    with torch.no_grad():
        run.G.out.bias.fill_(float("nan"))
    with pytest.raises(train.TrainingDiverged, match="training diverged at step 10"):
        train.train(run=run)


def test_lr_schedules():
    assert train.lr_factor("linear", 0.0, 0, 100) == 1.0
    assert train.lr_factor("linear", 0.5, 40, 100) == 1.0
    assert train.lr_factor("linear", 0.5, 75, 100) == 0.5
    assert abs(train.lr_factor("cosine", 0.0, 50, 100) - 0.5) < 1e-12
    assert train.lr_factor("cosine", 0.0, 100, 100) < 1e-12


def test_linear_decay_reaches_the_logged_lr(tiny_1d):
    run = train.train(config.apply_overrides(tiny_1d, ['train.lr_decay="linear"', "train.lr_decay_start=0.5"]))
    recs = [json.loads(ln) for ln in (run.out / "metrics.jsonl").read_text().splitlines() if "loss_d" in ln]
    # the step-30 record was logged after update 30, which ran at factor 1 - (29/40 - 0.5) / 0.5 = 0.55
    assert [round(r["lr_g"] / run.cfg.g_optim.lr, 6) for r in recs] == [1.0, 1.0, 0.55, 0.05]


def test_periodic_eval_logs_and_keeps_best(tiny_1d):
    cfg = config.apply_overrides(tiny_1d, ["eval.every=20", 'eval.metrics=["w1", "ks"]', "eval.n=300",
                                           'eval.best="w1"'])
    run = train.train(cfg)
    recs = [json.loads(ln) for ln in (run.out / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in recs if "eval/w1" in r]
    assert [r["step"] for r in evals] == [20, 40] and all(r["eval/ks"] >= 0 for r in evals)
    best = json.loads((run.out / "best.json").read_text())
    assert best["metric"] == "w1" and best["value"] == min(r["eval/w1"] for r in evals)
    assert (run.out / "best.safetensors").exists() and (run.out / "eval" / "step_000040.json").exists()


def test_eval_best_must_be_a_measured_value(tiny_1d):
    with pytest.raises(ConfigError, match=r"^eval.best: 'fid' is reported by fid, which eval.metrics \['w1'\] does "):
        config.apply_overrides(tiny_1d, ['eval.metrics=["w1"]', 'eval.best="fid"'])
    with pytest.raises(ConfigError, match=r"eval.metrics: unknown metric 'fdi' \(did you mean 'fid'\?\)"):
        config.apply_overrides(tiny_1d, ['eval.metrics=["fdi"]', 'eval.best="fid"'])
    with pytest.raises(ConfigError, match=r"^eval.best: 'recal' is not a value any metric reports \(did you mean "):
        config.apply_overrides(tiny_1d, ['eval.best="recal"'])
    with pytest.raises(ConfigError, match=r"^eval.best: 'fid' is not measured on points data \(fid measures images\)"):
        train.build(config.apply_overrides(tiny_1d, ['eval.best="fid"', "eval.every=10"]))


def test_ema_averages_weights_and_batchnorm_statistics():
    model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.BatchNorm1d(3))
    ema = __import__("copy").deepcopy(model)
    with torch.no_grad():
        model[0].weight.add_(1.0)
        model[1].running_mean.fill_(2.0)
    model[1].num_batches_tracked.fill_(7)
    before_w, before_m = ema[0].weight.clone(), ema[1].running_mean.clone()
    train._ema_update(ema, model, 0.75)
    torch.testing.assert_close(ema[0].weight, 0.75 * before_w + 0.25 * model[0].weight)
    torch.testing.assert_close(ema[1].running_mean, 0.75 * before_m + 0.25 * model[1].running_mean)
    assert ema[1].num_batches_tracked.item() == 7


def test_acgan_class_loss_on_fakes_raises_d_loss(tmp_path, tiny_mnist):
    """With aux_fake, D's loss adds CE on generated samples: same seed, same first batch, larger loss_d."""
    loss_d = {}
    for aux_fake in (False, True):
        cfg = config.apply_overrides(tiny_mnist, ['model.conditional="acgan"', "train.steps=1", "train.log_every=1",
                                                  f"loss.aux_fake={str(aux_fake).lower()}",
                                                  f'train.out="{tmp_path / str(aux_fake)}"'])
        run = train.train(cfg)
        lines = (run.out / "metrics.jsonl").read_text().splitlines()
        loss_d[aux_fake] = next(json.loads(ln) for ln in lines if "loss_d" in ln)["loss_d"]
    assert loss_d[True] > loss_d[False] + 1.0  # CE over 10 classes at init is about log(10) = 2.3
