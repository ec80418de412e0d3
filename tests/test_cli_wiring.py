"""main() wiring: every subcommand's exit code and one-line errors, config precedence with the TOML file's own
values, and eval.best keeping the best step's weights whichever way the metric points."""

from __future__ import annotations

import json

import pytest
import torch

import ganforge
from ganforge import checkpoint, config, train
from ganforge.cli import main
from tests.conftest import TINY_1D


def _sets(items: list[str]) -> list[str]:
    return [a for item in items for a in ("--set", item)]


@pytest.mark.parametrize("argv", [
    ["sample", "{missing}", "--out", "x.npy"],
    ["export", "{missing}", "--out", "G.safetensors"],
    ["eval", "{missing}"],
    ["doctor", "{missing}"],
    ["report", "{missing}", "--out", "r.html"],
    ["interpolate", "{missing}", "--out", "w.gif"],
    ["train", "--resume", "{missing}"],
])
def test_every_subcommand_names_a_missing_run_in_one_line(tmp_path, capsys, argv):
    argv = [a.replace("{missing}", str(tmp_path / "nope")) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ganforge {argv[0]}: error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert str(tmp_path / "nope") in err


def test_every_subcommand_succeeds_on_a_run(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["train", *_sets(TINY_1D), "--out", str(out), "--steps", "20"]) == 0
    for argv in (["sample", str(out), "-n", "10", "--out", str(tmp_path / "s.npy")],
                 ["export", str(out), "--out", str(tmp_path / "G.safetensors")],
                 ["eval", str(out), "-n", "200", "--metrics", "w1"],
                 ["doctor", str(out)],
                 ["report", str(out), "--out", str(tmp_path / "r.html")],
                 ["interpolate", str(out), "--frames", "2", "--out", str(tmp_path / "w.gif")],
                 ["presets"]):
        assert main(argv) == 0, argv
    assert (tmp_path / "r.html").stat().st_size > 1000 and (tmp_path / "w.gif").exists()


def test_precedence_preset_then_toml_then_flags_then_set(tmp_path):
    """The TOML file's own values survive where nothing later sets them, and beat the preset's."""
    preset = config.load_preset("gaussian-1d")
    cfg_file = tmp_path / "my.toml"
    cfg_file.write_text('[g_optim]\nlr = 3e-4\n[train]\nsteps = 5\nseed = 11\n[model]\nema = 0.5\n')
    assert preset.g_optim.lr != 3e-4 and preset.model.ema != 0.5 and preset.train.seed != 11
    out = tmp_path / "r"
    assert main(["train", str(cfg_file), "--preset", "gaussian-1d", "--out", str(out), "--steps", "3",
                 "--set", "train.seed=12", "--set", 'train.progress="none"', "--set", "data.n=500"]) == 0
    saved = ganforge.load_toml(out / "config.toml")
    assert saved.g_optim.lr == 3e-4 and saved.model.ema == 0.5  # the file's own values, over the preset's
    assert saved.train.steps == 3 and saved.train.seed == 12  # flags and --set over the file
    assert saved.d_optim.lr == preset.d_optim.lr and saved.loss == preset.loss  # the preset's, where nothing else set


@pytest.mark.parametrize("metric, higher", [("w1", False), ("modes_covered", True)])
def test_eval_best_keeps_the_best_steps_weights(tmp_path, monkeypatch, metric, higher):
    """Scripted metric values make the best step known: best.safetensors must hold that step's weights."""

    data = "ring-8" if metric == "modes_covered" else "gaussian-1d"
    values = {10: 5.0, 20: 1.0, 30: 3.0} if not higher else {10: 2.0, 20: 8.0, 30: 4.0}
    weights = {}

    def fake_evaluate(run_dir, metrics=None, n=0, seed=0, out=None):
        _, state = checkpoint.load(run_dir / "checkpoint.safetensors")
        step = state["step"]
        weights[step] = {k: v.clone() for k, v in ganforge.load(run_dir, ema=False).G.state_dict().items()}
        result = {"metrics": {metric: values[step]}}
        if out is not None:
            out.write_text(json.dumps(result))
        return result

    monkeypatch.setattr("ganforge.evaluate.evaluate", fake_evaluate)
    metrics = '["w1"]' if metric == "w1" else '["modes"]'
    cfg = config.apply_overrides(config.Config(), TINY_1D + [
        f'data.name="{data}"', "train.steps=30", "eval.every=10", f"eval.metrics={metrics}", f'eval.best="{metric}"',
        f'train.out="{tmp_path / "r"}"', "model.ema=0"])
    run = train.train(cfg)
    best_step = 20
    assert json.loads((run.out / "best.json").read_text()) == {"metric": metric, "value": values[20], "step": 20}
    kept = ganforge.load(run.out / "best.safetensors", ema=False).G.state_dict()
    for k, v in kept.items():
        torch.testing.assert_close(v, weights[best_step][k], rtol=0, atol=0)


def test_resume_refuses_another_out_and_fewer_steps(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["train", *_sets(TINY_1D), "--out", str(out)]) == 0  # 40 steps
    before = (out / "config.toml").read_text()
    assert main(["train", "--resume", str(out), "--out", str(tmp_path / "elsewhere"), "--steps", "50"]) == 2
    assert "--out: a resumed run continues in its own folder" in capsys.readouterr().err
    assert main(["train", "--resume", str(out), "--steps", "10"]) == 2
    assert "--steps 10: the run is already at step 40" in capsys.readouterr().err
    assert (out / "config.toml").read_text() == before and not (tmp_path / "elsewhere").exists()
    assert main(["train", "--resume", str(out), "--out", str(out), "--steps", "45"]) == 0
