"""The training doctor: each check fires on the problem it names and stays quiet on healthy runs."""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import pytest
import torch
from scipy.spatial.distance import pdist

from ganforge import config, doctor, train

TINY_1D = ['data.name="gaussian-1d"', "data.n=2000", "model.z_dim=4", "model.g.hidden=[16]",
           "model.d.hidden=[16]", "train.batch_size=32", "train.log_every=10", "train.sample_every=0",
           "train.ckpt_every=0", 'train.progress="none"', "train.hist_samples=200"]


def _records(n: int, **series) -> list[dict]:
    """n log records at steps 10, 20, ...; each keyword is a constant or a function of the index."""
    rng = np.random.default_rng(0)
    recs = []
    for i in range(n):
        rec = {"step": 10 * (i + 1)}
        for key, value in series.items():
            rec[key] = float(value(i, rng) if callable(value) else value)
        recs.append(rec)
    return recs


def _healthy(n: int = 40) -> list[dict]:
    def noisy(mean, std):
        return lambda i, rng: mean + std * rng.normal()

    return _records(n, loss_d=noisy(1.3, 0.05), loss_g=noisy(0.8, 0.05), d_real=noisy(0.6, 0.03),
                    d_fake=noisy(0.4, 0.03), grad_norm_d=noisy(2, 0.3), grad_norm_g=noisy(1, 0.2),
                    diversity=noisy(0.95, 0.02))


def _checks(findings) -> list[str]:
    return [f.check for f in findings]


# ---------------------------------------------------------------------------------------------------
# Checks on constructed records


def test_healthy_records_raise_nothing():
    cfg = config.to_dict(config.Config())
    assert doctor.diagnose(_healthy(), cfg) == []
    assert doctor.format_findings(doctor.diagnose(_healthy(), cfg)) == "no problems found"


def test_discriminator_overpowering_fires_with_its_evidence():
    # 10 healthy records, then D wins: D(x) ~ 0.99, D(G(z)) ~ 0.01 and G's gradient norm falls 1 -> 0.01
    recs = _healthy(10) + _records(20, d_real=0.99, d_fake=0.01, loss_d=0.02, loss_g=4.6,
                                   grad_norm_d=0.1, grad_norm_g=lambda i, r: 0.5 * 0.8**i)
    for j, r in enumerate(recs[10:]):
        r["step"] = 110 + 10 * j
    (f,) = doctor.diagnose(recs)
    assert (f.check, f.severity, f.step) == ("overpowering", "warning", 110)
    assert f.evidence["from_step"] == 110 and f.evidence["to_step"] == 300 and f.evidence["records"] == 20
    assert f.evidence["d_real"] == 0.99 and f.evidence["d_fake"] == 0.01
    assert f.evidence["grad_norm_g_late"] == pytest.approx(0.5 * 0.8**18)
    assert "D(x) stayed above 0.95 and D(G(z)) below 0.05" in f.message and "still ongoing" in f.message
    assert "G's gradient norm has collapsed" in f.message
    assert 2 <= len(f.advice) <= 3


def test_overpowering_needs_five_consecutive_records_and_a_probability_loss():
    four = _healthy(10) + _records(4, d_real=0.99, d_fake=0.01) + _healthy(5)
    assert doctor.diagnose(four) == []
    five = _records(5, d_real=0.99, d_fake=0.01)
    assert _checks(doctor.diagnose(five)) == ["overpowering"]
    # with the WGAN loss D(x), D(G(z)) are raw critic scores, not probabilities
    assert doctor.diagnose(five, {"loss": {"name": "wgan"}}) == []


def test_mode_collapse_from_logged_diversity():
    recs = _healthy(30)
    for r in recs[-3:]:
        r["diversity"] = 0.05
    (f,) = doctor.diagnose(recs)
    assert (f.check, f.step, f.evidence) == ("mode_collapse", 280, {"diversity": 0.05})  # the low stretch
    assert "spread only 5% as much as real data" in f.message
    recs[-1]["diversity"] = 0.9  # one low measurement followed by a healthy one: not collapse
    assert doctor.diagnose(recs) == []
    first = [{"step": 100, "diversity": 0.05}]  # a single (first) measurement: G may just be untrained
    assert doctor.diagnose(first) == []
    assert _checks(doctor.diagnose(first + [{"step": 200, "diversity": 0.3}])) == ["mode_collapse"]


def test_mode_collapse_from_duplicates_and_classes():
    recs = _healthy(20)
    recs[-2] |= {"duplicates": 0.7}
    recs[-1] |= {"duplicates": 0.8}
    assert doctor.diagnose(recs)[0].evidence == {"duplicates": 0.8}
    recs = _healthy(20)
    recs[-1]["classes_produced"] = [900, 95, 5, 0, 0, 0, 0, 0, 0, 0]  # 2 of 10 classes reach 1%
    (f,) = doctor.diagnose(recs)
    assert f.evidence == {"classes_produced": 2, "num_classes": 10}
    assert "only 2 of 10 classes" in f.message
    recs[-1]["classes_produced"] = [100] * 5 + [1] * 5  # 5 of 10: not fewer than half
    assert doctor.diagnose(recs) == []
    recs[-1] |= {"classes_produced": 3, "num_classes": 10}
    assert _checks(doctor.diagnose(recs)) == ["mode_collapse"]


def test_nan_is_divergence(tmp_path):
    recs = _healthy(10)
    recs[6]["loss_d"] = math.nan
    recs[7]["grad_norm_g"] = math.inf
    (f,) = doctor.diagnose(recs)
    assert (f.check, f.severity, f.step) == ("divergence", "error", 70)
    assert f.evidence == {"step": 70, "fields": ["loss_d"]}
    # the same from a metrics.jsonl written the way the trainer writes it (json.dumps gives NaN)
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs) + '{"step": 11')
    assert _checks(doctor.diagnose_run(tmp_path)) == ["divergence"]


def test_growing_oscillation_fires_and_a_steady_trend_does_not():
    calm = [1.3 + 0.01 * (-1) ** i for i in range(40)]
    wild = [1.3 + 0.6 * (-1) ** i for i in range(10)]
    recs = [{"step": 10 * (i + 1), "loss_d": v} for i, v in enumerate(calm + wild)]
    (f,) = doctor.diagnose(recs)
    assert (f.check, f.step) == ("oscillation", 410)
    assert f.evidence["window_records"] == 10
    trend = [{"step": 10 * (i + 1), "loss_d": 2.0 - 0.03 * i} for i in range(50)]
    assert doctor.diagnose(trend) == []


def test_exploding_gradient_norms():
    recs = _healthy(20)
    recs[12]["grad_norm_d"] = 500.0
    (f,) = doctor.diagnose(recs)
    assert (f.check, f.step) == ("exploding_gradients", 130)
    assert (f.evidence["key"], f.evidence["max"]) == ("grad_norm_d", 500.0)
    assert "D's gradients are exploding" in f.message


def test_config_sanity():
    cfg = config.to_dict(config.apply_overrides(config.Config(), ["g_optim.lr=0", "d_optim.lr=0.05",
                                                                   "train.batch_size=4"]))
    found = doctor.diagnose([], cfg)
    assert [f.evidence for f in found] == [{"key": "g_optim.lr", "value": 0.0},
                                          {"key": "d_optim.lr", "value": 0.05},
                                          {"key": "train.batch_size", "value": 4}]
    assert found[0].message == "g_optim.lr = 0 is outside the usual range 1e-06..0.01, so G never learns."
    assert "so D's updates overshoot" in found[1].message
    assert doctor.diagnose([], config.Config()) == []  # a Config object works too


def test_online_doctor_reports_each_finding_once():
    doc = doctor.Doctor(config.to_dict(config.apply_overrides(config.Config(), ["g_optim.lr=0"])))
    recs = _healthy(5) + _records(8, d_real=0.99, d_fake=0.01)
    new = [[f.check for f in doc.observe(r)] for r in recs]
    assert new[0] == ["config"]
    assert new[9] == ["overpowering"]  # the fifth consecutive overpowered record
    assert sum(len(n) for n in new) == 2
    assert doc.observe({"step": 130, "doctor": {"check": "config"}}) == []  # its own log lines are ignored
    f = doctor.diagnose(doc.records, doc.cfg)[1]
    assert json.loads(json.dumps(f.to_dict()))["check"] == "overpowering"


def test_format_findings():
    f = doctor.Finding("divergence", "error", 70, "Training diverged at step 70: loss_d = nan.", {},
                       ["A.", "B."])
    assert doctor.format_findings([f]) == ("ERROR: training diverged (from step 70)\n"
                                           "  Training diverged at step 70: loss_d = nan.\n"
                                           "  try: A.\n"
                                           "     - B.")


# ---------------------------------------------------------------------------------------------------
# Sample statistics


def test_diversity_closed_forms():
    x = torch.randn(50, 3, 4, generator=torch.Generator().manual_seed(0))
    assert doctor.diversity(x, x)["diversity"] == pytest.approx(1.0, abs=1e-12)
    assert doctor.diversity(x, x)["duplicates"] == 0.0
    same = doctor.diversity(x[:1].expand(50, 3, 4), x)
    assert same["diversity"] == pytest.approx(0.0, abs=1e-6)  # cdist via matmul leaves ~1e-8 for equal rows
    assert same["duplicates"] == 1.0
    two = doctor.diversity(torch.tensor([[0.0], [3.0]]), torch.tensor([[0.0], [1.0]]))
    assert two["diversity"] == 3.0
    y = np.random.default_rng(1).normal(size=(40, 12))
    got = doctor.diversity(y, x, max_n=40, seed=0)["diversity"]
    # the real subset is random: compare with scipy on the same seeded subset
    idx = torch.randperm(50, generator=torch.Generator().manual_seed(0))[:40]
    expected = pdist(y).mean() / pdist(x.reshape(50, -1)[idx].double().numpy()).mean()
    assert got == pytest.approx(expected, rel=1e-9)


def test_diversity_errors():
    too_few = r"^diversity: needs at least 2 samples and 2 real examples, got 1 and 5$"
    with pytest.raises(ValueError, match=too_few):
        doctor.diversity(torch.zeros(1, 2), torch.randn(5, 2))
    with pytest.raises(ValueError, match=r"^diversity: samples and real differ in size per example: 2 vs 3$"):
        doctor.diversity(torch.zeros(4, 2), torch.randn(5, 3))
    with pytest.raises(ValueError, match=r"^diversity: the real examples are all identical$"):
        doctor.diversity(torch.randn(4, 2), torch.zeros(5, 2))


def test_class_counts_and_coverage():
    counts = doctor.class_counts(torch.tensor([0, 0, 3, 3, 3]), 5)
    assert counts == [2, 0, 0, 3, 0]
    assert doctor.classes_covered([989, 10, 1]) == 2  # 1.0% counts, 0.1% does not
    assert doctor.classes_covered([0, 0]) == 0


# ---------------------------------------------------------------------------------------------------
# Command line and real runs


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ganforge")
    doctor.add_doctor_parser(p.add_subparsers(dest="command", required=True))
    return p


def test_cli_missing_metrics_is_a_one_line_error(tmp_path):
    args = _parser().parse_args(["doctor", str(tmp_path)])
    with pytest.raises(FileNotFoundError) as e:
        args.func(args)
    assert str(e.value) == (f"no metrics.jsonl in {tmp_path}: not a ganforge run folder, or training has not "
                            "logged yet")


def _train(tmp_path, name: str, extra: list[str]) -> train.Run:
    cfg = config.apply_overrides(config.Config(), TINY_1D + extra + [f'train.out="{tmp_path / name}"'])
    return train.train(cfg)


def test_real_run_with_frozen_generator_is_diagnosed(tmp_path, capsys):
    # G never updates (lr 0) while D learns fast: D must end up telling every fake apart.
    run = _train(tmp_path, "frozen", ["train.steps=250", "g_optim.lr=0", "d_optim.lr=5e-3"])
    found = doctor.diagnose_run(run.out)
    assert _checks(found) == ["config", "overpowering"]
    assert found[0].evidence == {"key": "g_optim.lr", "value": 0.0}
    over = found[1]
    assert over.evidence["d_real"] > 0.95 and over.evidence["d_fake"] < 0.05
    assert over.evidence["to_step"] == 250 and over.evidence["records"] >= 5
    assert over.advice[0].startswith("g_optim.lr is 0, so G never changes")
    # online: the same records replayed through the Doctor give the same two findings, once each
    doc = doctor.Doctor(doctor.read_config(run.out))
    online = [f for r in doctor.read_metrics(run.out) for f in doc.observe(r)]
    assert _checks(online) == ["config", "overpowering"]
    assert online[1].step == over.step
    # the command prints the findings and exits 0
    args = _parser().parse_args(["doctor", str(run.out)])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "WARNING: discriminator overpowering the generator (from step" in out


def test_real_healthy_run_raises_nothing(tmp_path, capsys):
    run = _train(tmp_path, "healthy", ["train.steps=200"])
    assert doctor.diagnose_run(run.out) == []
    args = _parser().parse_args(["doctor", str(run.out)])
    assert args.func(args) == 0
    assert capsys.readouterr().out == "no problems found\n"


def test_mode_collapse_waits_for_30_percent_of_the_run():
    """Early samples of every GAN look alike: low class counts at 10-20% of the run are not judged."""
    early = [{"step": s, "classes_produced": [0] * 9 + [64]} for s in (1000, 2000)]
    later = [{"step": s, "classes_produced": [7] * 9 + [1]} for s in (3000, 4000)]
    assert doctor.diagnose(early + later, total_steps=10000) == []
    collapsed = [{"step": s, "classes_produced": [0] * 9 + [64]} for s in (3000, 4000)]
    found = doctor.diagnose(early + collapsed, total_steps=10000)
    assert [(f.check, f.step) for f in found] == [("mode_collapse", 4000)]
    online = doctor.Doctor(None, total_steps=10000)
    assert [f.check for rec in early + collapsed for f in online.observe(rec)] == ["mode_collapse"]
